//! TLS to a tenant's NATS server, which is connected to at the address its name resolved to
//! when it was checked (so that the name cannot be moved elsewhere, such as this host's
//! loopback, between the check and the connection): its certificate is checked against the
//! name the tenant gave, not against that address.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::net::IpAddr;
use std::sync::Arc;

/// Returns the certificate authorities of this host (as the NATS client would use them).
pub fn host_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "a certificate authority of this host could not be read");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// Returns a client configuration trusting `roots` that checks the certificate of each address
/// in `names` against its name.
pub fn checking_names(roots: Arc<RootCertStore>, names: &[(IpAddr, String)]) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let names = names
        .iter()
        .map(|(address, name)| {
            ServerName::try_from(name.clone())
                .map(|name| (*address, name))
                .map_err(|error| format!("`{name}` is not a host name: {error}"))
        })
        .collect::<Result<_, _>>()?;
    let verifier = NamesOfAddresses {
        webpki: WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|error| error.to_string())?,
        names,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Checks certificates as webpki does, against the name given for the address connected to.
#[derive(Debug)]
struct NamesOfAddresses {
    webpki: Arc<WebPkiServerVerifier>,
    names: Vec<(IpAddr, ServerName<'static>)>,
}

impl ServerCertVerifier for NamesOfAddresses {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ServerName::IpAddress(address) = server_name else {
            return self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        };
        let address = IpAddr::from(*address);
        let mut refused = None;
        // Two names the tenant gave may resolve to one address: either may be its certificate's.
        for (_, name) in self.names.iter().filter(|(named, _)| *named == address) {
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
            {
                Ok(verified) => return Ok(verified),
                Err(error) => refused = Some(error),
            }
        }
        match refused {
            Some(error) => Err(error),
            None => self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
