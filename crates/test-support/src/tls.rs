//! Test certificates: a certificate authority of the test's own and server
//! certificates it signs, written as PEM files the servers load and clients
//! trust (`curl --cacert`, `openssl s_client -CAfile`).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SerialNumber};

/// A test certificate authority: its certificate is written to `ca.pem` in
/// the directory given, for clients to trust.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate (PEM).
    pub ca_pem: PathBuf,
}

/// A server certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA (ECDSA P-256) whose certificate is written to `dir/ca.pem`.
    pub fn new(dir: &Path) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rr-http test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).expect("write ca.pem");
        TestCa { cert, key, ca_pem }
    }

    /// A server certificate for `names` (DNS names or IP addresses; the
    /// first is also its common name) with serial number `serial`, signed by
    /// this CA, as the PEM text of the certificate and of its key.
    pub fn issue_pem(&self, names: &[&str], serial: u64) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// [`issue_pem`](Self::issue_pem) written to `dir/{stem}.crt` and `dir/{stem}.key`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str], serial: u64) -> CertFiles {
        let (cert_pem, key_pem) = self.issue_pem(names, serial);
        let files = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert_pem).expect("write certificate");
        std::fs::write(&files.key, key_pem).expect("write key");
        files
    }
}

/// Replaces `path` with `data` at once: written beside it, then renamed over
/// it, as a deployment tool does (a reader never sees half a file).
pub fn replace_file(path: &Path, data: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).expect("write new file");
    std::fs::rename(&tmp, path).expect("rename into place");
}
