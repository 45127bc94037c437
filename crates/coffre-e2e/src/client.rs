//! AWS SDK clients for a [`Server`]: signed as root or as another key, in the
//! server's region or another, trusting its test CA; and the errors they get.

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ProvideErrorMetadata as _;

use crate::server::{ROOT_ACCESS, ROOT_SECRET, Server};

/// The region the server expects signatures for.
const REGION: &str = "us-east-1";

impl Server {
    /// An SDK client signed with root's credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_as(ROOT_ACCESS, ROOT_SECRET)
    }

    pub fn client_as(&self, access: &str, secret: &str) -> aws_sdk_s3::Client {
        self.client_in(REGION, access, secret)
    }

    /// A client that signs for `region`: another than the server's is refused.
    pub fn client_in(&self, region: &str, access: &str, secret: &str) -> aws_sdk_s3::Client {
        let http = match &self.ca_cert {
            None => aws_smithy_http_client::Builder::new().build_http(),
            Some(ca) => {
                use aws_smithy_http_client::tls;
                let pem = std::fs::read(ca).expect("test CA");
                let trust = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
                let context = tls::TlsContext::builder().with_trust_store(trust).build().expect("TLS context");
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                    .tls_context(context)
                    .build_https()
            }
        };
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .endpoint_url(self.endpoint())
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(access, secret, None, None, "e2e"))
            .force_path_style(true)
            .http_client(http)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// The S3 error code and HTTP status of an SDK call that must fail.
pub fn error_code<T: std::fmt::Debug, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (String, u16) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => {
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            (e.code().unwrap_or("<none>").to_owned(), status)
        }
    }
}
