//! The TLS client side, for whoever connects out (today smtpd's relay
//! client): one connector per certificate policy for the whole process, and
//! the name a server is checked against.
//!
//! Two policies: [`connector`]`(true)` checks the server's certificate
//! against the system's trusted roots (`verify`); [`connector`]`(false)`
//! takes any certificate but still checks the handshake's signatures
//! (`may` and `encrypt`, opportunistic TLS, RFC 7435). [`trusting`] builds
//! one that trusts only the roots given, for tests against our own
//! self-signed certificate. Every one uses the ring provider explicitly,
//! as the server side does.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

/// The name for SNI and the certificate check: the host as named, or its
/// address when the name is not a DNS name.
pub fn server_name(host: &str, ip: IpAddr) -> ServerName<'static> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(host.to_string()).unwrap_or(ServerName::IpAddress(ip.into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for a policy: `verify` checks the certificate against the
/// system's roots, else any certificate is taken. One per policy for the
/// whole process: loading the system's roots reads many files.
pub fn connector(verify: bool) -> Result<TlsConnector, String> {
    static VERIFYING: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    static OPPORTUNISTIC: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    if verify {
        VERIFYING.get_or_init(verifying_connector).clone()
    } else {
        OPPORTUNISTIC.get_or_init(opportunistic_connector).clone()
    }
}

fn verifying_connector() -> Result<TlsConnector, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found on this system ({} errors loading them)",
            found.errors.len()
        ));
    }
    trusting(roots)
}

/// A connector that trusts only `roots`.
pub fn trusting(roots: RootCertStore) -> Result<TlsConnector, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn opportunistic_connector() -> Result<TlsConnector, String> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate, for `may` and `encrypt`: most MX hosts have
/// no certificate a sender could check (RFC 7435, opportunistic security),
/// and encryption without authentication still defeats passive listeners.
/// Handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_for_dns_names_and_addresses() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            server_name("mx.example.org", ip),
            ServerName::try_from("mx.example.org").unwrap()
        );
        // A hop given as an address is checked as one.
        assert_eq!(
            server_name("127.0.0.1", ip),
            ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into())
        );
        // A name that is no DNS name falls back to the address reached.
        assert_eq!(
            server_name("not a name", ip),
            ServerName::IpAddress(ip.into())
        );
    }

    #[test]
    fn one_connector_per_policy() {
        // Opportunistic needs no roots, so it always builds.
        assert!(connector(false).is_ok());
        // The same connector is handed out each time.
        let a = connector(false).unwrap();
        let b = connector(false).unwrap();
        assert!(Arc::ptr_eq(a.config(), b.config()));
    }
}
