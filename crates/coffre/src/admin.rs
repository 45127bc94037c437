//! The admin API (`coffre-admin`) plugged into this server: the database's
//! gateway membership for it, and the connection loop that serves routers.

use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;

/// The gateways sharing the PostgreSQL metadata database, from its
/// membership table.
pub struct SharedGateways(pub Arc<coffre_meta::PgMeta>);

#[async_trait::async_trait]
impl coffre_admin::Gateways for SharedGateways {
    async fn members(&self) -> coffre_core::Result<Vec<(String, f64)>> {
        self.0.members().await
    }
}

/// Policy simulation by the S3 front's own authorizer.
pub struct Simulation(pub coffre_s3::PolicySimulator);

#[async_trait::async_trait]
impl coffre_admin::Simulator for Simulation {
    async fn simulate(&self, q: &coffre_admin::Question) -> Result<coffre_admin::Answer, String> {
        let context: Vec<(String, String)> = q.context.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let verdict = self.0.simulate(q.access_key(), &q.action, &q.resource, &context).await?;
        Ok(coffre_admin::Answer {
            decision: if verdict.allowed { "allow" } else { "deny" }.to_owned(),
            explanation: verdict.why,
            statements: verdict.deciding,
        })
    }
}

/// Serves an axum router (the admin API, a storage node's API) on `listener`
/// through the same connection loop as S3 (same TLS handshake, head guards,
/// TCP_NODELAY and drain) until `shutdown`. Each request carries the client's
/// address as [`ConnectInfo`].
pub async fn serve(
    name: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    handshake: Option<Arc<dyn coffre_s3::conn::Handshake>>,
    limits: coffre_s3::conn::ConnLimits,
    shutdown: impl Future<Output = ()>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router);
    let make = |peer| {
        let service = service.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<std::net::SocketAddr>(peer));
            hyper::service::Service::call(&service, req)
        })
    };
    coffre_s3::conn::serve(listener, handshake, limits, make, shutdown, drain, name).await
}
