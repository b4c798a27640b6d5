//! Helpers for this crate's tests: a TLS client that trusts one certificate.

use std::path::Path;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A connector whose only trust anchor is the certificate(s) in `cert_pem`.
pub fn connector_trusting(cert_pem: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    crate::tls::client::trusting(roots).unwrap()
}

/// Connects over TCP and does the client handshake for `name` (a DNS name
/// or an IP address).
pub async fn tls_connect(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    // An IP address must be checked against IP-address SANs, not DNS names.
    let server_name = match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::DnsName(name.to_string().try_into().unwrap()),
    };
    connector.connect(server_name, tcp).await
}
