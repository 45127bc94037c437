//! Virtual-host-style addressing: which Host headers name a bucket
//! (`BUCKET.DOMAIN[:port]`) and which are path-style.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// Virtual-host routing: `BUCKET.DOMAIN[:port]` names a bucket; any other
/// host (the bare domain, an IP address, an unknown name) is path-style.
/// s3s's own parsers compare the Host header with its port and treat unknown
/// hosts as bucket names, which breaks `http://localhost:9000` endpoints.
#[derive(Clone)]
pub(crate) struct Domains(Vec<String>);

impl Domains {
    pub(crate) fn new(domains: &[String]) -> Result<Self, String> {
        for d in domains {
            let ok = !d.is_empty()
                && d.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !ok {
                return Err(format!("invalid S3 domain {d:?}"));
            }
        }
        Ok(Self(domains.iter().map(|d| d.to_ascii_lowercase()).collect()))
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        for domain in &self.0 {
            if let Some(bucket) = name.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_route_buckets_only_under_known_domains() {
        let d = Domains::new(&["localhost".into(), "s3.example.fr".into()]).expect("domains");
        let bucket = |h: &'static str| d.parse_host_header(h).ok().and_then(|v| v.bucket().map(str::to_owned));
        assert_eq!(bucket("bkt.localhost:9000"), Some("bkt".into()));
        assert_eq!(bucket("my.dotted.bkt.s3.example.fr"), Some("my.dotted.bkt".into()));
        assert_eq!(bucket("localhost:9000"), None);
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("other.example.com"), None);
        assert!(Domains::new(&["bad domain".into()]).is_err());
    }
}
