//! A throwaway certificate authority for TLS tests, made with the `openssl` CLI: a CA, and
//! server certificates it signs for 127.0.0.1 and localhost. Nothing here is trusted elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM) clients are told to trust.
    pub ca_cert: PathBuf,
    ca_key: PathBuf,
}

/// A server certificate and its key (PEM files).
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (is the openssl CLI installed?): {e}"));
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        #[rustfmt::skip]
        openssl(dir.path(), &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Coffre e2e test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        let (ca_cert, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        Self { dir, ca_cert, ca_key }
    }

    /// A P-256 server certificate for 127.0.0.1 and localhost; `serial` tells leaves apart.
    pub fn leaf(&self, name: &str, serial: u32) -> Leaf {
        let d = self.dir.path();
        let (key, csr, ext, cert) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.ext"), format!("{name}.pem"));
        #[rustfmt::skip]
        openssl(d, &[
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", &key, "-out", &csr, "-subj", "/CN=localhost",
        ]);
        std::fs::write(
            d.join(&ext),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        let (ca_cert, ca_key, serial) =
            (self.ca_cert.to_string_lossy(), self.ca_key.to_string_lossy(), serial.to_string());
        #[rustfmt::skip]
        openssl(d, &[
            "x509", "-req", "-in", &csr, "-CA", &ca_cert, "-CAkey", &ca_key, "-set_serial", &serial,
            "-days", "2", "-extfile", &ext, "-out", &cert,
        ]);
        Leaf { cert: d.join(cert), key: d.join(key) }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
