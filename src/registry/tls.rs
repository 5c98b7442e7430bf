//! TLS with registries: the certificates hoist trusts, the one it shows, and what it checks.
//!
//! Trust anchors are the system's CAs (as reqwest loads them) and the user's: `--ca-cert` files
//! and docker's `certs.d/HOST[:PORT]/*.crt`. A certificate the user trusts is also accepted
//! when the server presents that very certificate, even with `CA:TRUE` (what `openssl req
//! -x509` makes), as docker, skopeo and curl accept it; its name, dates and extended key usage
//! are still checked. A client certificate for mutual TLS comes from
//! `certs.d/HOST[:PORT]/NAME.cert` with its `NAME.key`, as docker reads them.
//!
//! A registry that is insecure by the user's word, or on loopback, gets HTTPS without
//! verification for its own host only: a token realm elsewhere is still verified.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::options::{split_host_port, TransportOptions};
use crate::error::RegistryError;
use crate::fsutil::small_file;

/// The largest CA, certificate or key file hoist reads (a system CA bundle is about 200 KiB).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// What a client's TLS connections showed, for the error when a registry cannot be reached.
#[derive(Clone, Debug, Default)]
pub struct Handshakes {
    /// Set once a server presented a certificate: that port speaks TLS.
    certificate_seen: Arc<AtomicBool>,
    /// Whether hoist has a client certificate to show.
    pub client_certificate: bool,
}

impl Handshakes {
    /// Whether a server presented a certificate: plain HTTP to that port would be pointless.
    pub fn certificate_seen(&self) -> bool {
        self.certificate_seen.load(Ordering::Relaxed)
    }
}

/// The rustls configuration for `registry`: its trust anchors and client certificate; with
/// `verify` false, the registry's own host is not verified (insecure and loopback registries).
pub fn client_config(
    registry: &str,
    options: &TransportOptions,
    verify: bool,
) -> Result<(rustls::ClientConfig, Handshakes), RegistryError> {
    let tls_error = |detail: String| RegistryError::Tls { registry: registry.to_owned(), detail };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let trusted = user_certificates(registry, options)?;
    let mut roots = RootCertStore::empty();
    // As reqwest does: system stores often hold a few certificates rustls cannot use.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for certificate in &trusted {
        roots.add(certificate.clone()).map_err(|e| tls_error(format!("a trusted certificate is not usable: {e}")))?;
    }
    let webpki = if roots.is_empty() {
        None
    } else {
        let built = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build();
        Some(built.map_err(|e| tls_error(format!("cannot set up certificate checks: {e}")))?)
    };
    let unverified = if verify {
        None
    } else {
        let host = options.api_host(registry);
        let (name, _) = split_host_port(&host);
        ServerName::try_from(name.to_owned()).ok()
    };
    let identity = client_identity(registry, options)?;
    let handshakes = Handshakes { certificate_seen: Arc::default(), client_certificate: identity.is_some() };
    let verifier = RegistryVerifier {
        seen: handshakes.certificate_seen.clone(),
        webpki,
        trusted,
        unverified,
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match identity {
        Some((certificate, chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_error(format!("client certificate {} cannot be used: {e}", certificate.display())))?,
        None => builder.with_no_client_auth(),
    };
    // What reqwest offers when it builds the configuration itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, handshakes))
}

/// `--ca-cert` files, then `certs_dir/HOST[:PORT]/*.crt`, sorted.
fn ca_files(registry: &str, options: &TransportOptions) -> Vec<PathBuf> {
    let mut files = options.ca_certs.clone();
    files.extend(certs_d_files(registry, options, "crt"));
    files
}

/// The files in `certs_dir/HOST[:PORT]/` with this extension, sorted.
fn certs_d_files(registry: &str, options: &TransportOptions, extension: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(options.certs_dir.join(registry)) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    found.sort();
    found
}

/// Every certificate in the user's CA files.
fn user_certificates(
    registry: &str,
    options: &TransportOptions,
) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let tls_error = |detail: String| RegistryError::Tls { registry: registry.to_owned(), detail };
    let mut certificates = Vec::new();
    for path in ca_files(registry, options) {
        let pem = small_file::read(&path, MAX_PEM_BYTES)
            .map_err(|e| tls_error(format!("cannot read CA file {}: {e}", path.display())))?;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            certificates
                .push(certificate.map_err(|e| tls_error(format!("CA file {} is not PEM: {e}", path.display())))?);
        }
    }
    Ok(certificates)
}

/// The client certificate for `registry`, docker style: the first `NAME.cert` in
/// `certs_dir/HOST[:PORT]/` (sorted) with its chain and the key in `NAME.key`. A certificate
/// without its key, or a key without its certificate, is an error, as it is for docker.
#[allow(clippy::type_complexity)]
fn client_identity(
    registry: &str,
    options: &TransportOptions,
) -> Result<Option<(PathBuf, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, RegistryError> {
    let tls_error = |detail: String| RegistryError::Tls { registry: registry.to_owned(), detail };
    let certificates = certs_d_files(registry, options, "cert");
    for key in certs_d_files(registry, options, "key") {
        if !key.with_extension("cert").exists() {
            return Err(tls_error(format!(
                "client key {} has no certificate beside it ({})",
                key.display(),
                key.with_extension("cert").display()
            )));
        }
    }
    let Some(certificate) = certificates.first() else {
        return Ok(None);
    };
    let key = certificate.with_extension("key");
    if !key.exists() {
        return Err(tls_error(format!(
            "client certificate {} has no key beside it ({}); CA certificates end in .crt",
            certificate.display(),
            key.display()
        )));
    }
    let pem = small_file::read(certificate, MAX_PEM_BYTES)
        .map_err(|e| tls_error(format!("cannot read client certificate {}: {e}", certificate.display())))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("client certificate {} is not PEM: {e}", certificate.display())))?;
    if chain.is_empty() {
        return Err(tls_error(format!("client certificate {} holds no certificate", certificate.display())));
    }
    let key_pem = small_file::read(&key, MAX_PEM_BYTES)
        .map_err(|e| tls_error(format!("cannot read client key {}: {e}", key.display())))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| tls_error(format!("client key {} is not a PEM private key: {e}", key.display())))?;
    tracing::debug!("client certificate for {registry}: {}", certificate.display());
    Ok(Some((certificate.clone(), chain, private)))
}

/// rustls' WebPKI checks, plus: a presented certificate that is byte for byte one the user
/// trusts passes even with `CA:TRUE`, once its name, dates and key usage check out; and the
/// host in `unverified` is not checked at all.
#[derive(Debug)]
struct RegistryVerifier {
    /// Set when a server presents a certificate.
    seen: Arc<AtomicBool>,
    /// Checks against the trust anchors; `None` when there are none.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates the user trusts explicitly.
    trusted: Vec<CertificateDer<'static>>,
    /// The registry's host when it is insecure or on loopback.
    unverified: Option<ServerName<'static>>,
    /// For handshake signatures, checked in every case.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RegistryVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.seen.store(true, Ordering::Relaxed);
        if self.unverified.as_ref().is_some_and(|host| host.to_str() == server_name.to_str()) {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(webpki) = &self.webpki else {
            return Err(CertificateError::UnknownIssuer.into());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(error)
                if is_ca_used_as_end_entity(&error)
                    && self.trusted.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                check_trusted_end_entity(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(error) if is_ca_used_as_end_entity(&error) => Err(rustls::Error::General(
                "the registry presents a CA certificate (CA:TRUE, as `openssl req -x509` makes) that is not trusted; \
                 trust that very certificate"
                    .to_owned(),
            )),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether WebPKI refused a certificate only because it is a CA's.
fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
        }
        _ => false,
    }
}

/// The checks a certificate the user trusts still gets when the server presents it itself:
/// its subject alternative names against the host (as WebPKI and Go check them: the common
/// name is not used), its validity dates, and an extended key usage that allows a server.
fn check_trusted_end_entity(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let facts = der::facts(end_entity.as_ref()).ok_or(CertificateError::BadEncoding)?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < facts.not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now > facts.not_after {
        return Err(CertificateError::Expired.into());
    }
    if !facts.for_servers {
        return Err(CertificateError::InvalidPurpose.into());
    }
    Ok(())
}

/// Just enough DER to read a certificate's validity and extended key usage; anything
/// unexpected reads as `None`, which refuses the certificate.
mod der {
    /// What the pinned-certificate check needs from a certificate.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Facts {
        /// notBefore, seconds since the Unix epoch.
        pub not_before: i64,
        /// notAfter, seconds since the Unix epoch.
        pub not_after: i64,
        /// No extended key usage, or one that includes serverAuth or anyExtendedKeyUsage.
        pub for_servers: bool,
    }

    const SEQUENCE: u8 = 0x30;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    const EXTENSIONS: u8 = 0xa3;
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    const ANY_EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

    /// One element: its tag, its contents and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let mut length = 0usize;
            for _ in 0..count {
                let (&byte, after) = rest.split_first()?;
                length = length.checked_mul(256)?.checked_add(usize::from(byte))?;
                rest = after;
            }
            length
        };
        if rest.len() < length {
            return None;
        }
        let (contents, rest) = rest.split_at(length);
        Some((tag, contents, rest))
    }

    /// The contents of an element with this tag.
    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (found, contents, rest) = element(input)?;
        (found == tag).then_some((contents, rest))
    }

    /// Reads a DER certificate.
    pub fn facts(certificate: &[u8]) -> Option<Facts> {
        let (certificate, _) = expect(certificate, SEQUENCE)?;
        let (tbs, _) = expect(certificate, SEQUENCE)?;
        let mut rest = tbs;
        // [0] version, when present.
        if rest.first() == Some(&0xa0) {
            rest = element(rest)?.2;
        }
        // serialNumber, signature, issuer.
        for _ in 0..3 {
            rest = element(rest)?.2;
        }
        let (validity, after) = expect(rest, SEQUENCE)?;
        let (not_before, validity) = time(validity)?;
        let (not_after, _) = time(validity)?;
        // subject, subjectPublicKeyInfo, then optional unique IDs and [3] extensions.
        rest = element(after)?.2;
        rest = element(rest)?.2;
        let mut for_servers = true;
        while !rest.is_empty() {
            let (tag, contents, after) = element(rest)?;
            if tag == EXTENSIONS {
                for_servers = extended_key_usage_allows_servers(contents)?;
            }
            rest = after;
        }
        Some(Facts { not_before, not_after, for_servers })
    }

    fn extended_key_usage_allows_servers(extensions: &[u8]) -> Option<bool> {
        let (mut list, _) = expect(extensions, SEQUENCE)?;
        while !list.is_empty() {
            let (extension, after) = expect(list, SEQUENCE)?;
            list = after;
            let (id, mut rest) = expect(extension, OID)?;
            if id != EXTENDED_KEY_USAGE {
                continue;
            }
            if rest.first() == Some(&BOOLEAN) {
                rest = element(rest)?.2;
            }
            let (value, _) = expect(rest, OCTET_STRING)?;
            let (mut purposes, _) = expect(value, SEQUENCE)?;
            while !purposes.is_empty() {
                let (purpose, after) = expect(purposes, OID)?;
                if purpose == SERVER_AUTH || purpose == ANY_EXTENDED_KEY_USAGE {
                    return Some(true);
                }
                purposes = after;
            }
            return Some(false);
        }
        Some(true)
    }

    /// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
    fn time(input: &[u8]) -> Option<(i64, &[u8])> {
        let (tag, text, rest) = element(input)?;
        let (year, text) = match tag {
            UTC_TIME if text.len() == 13 => {
                let short = digits(&text[..2])?;
                (if short < 50 { 2000 + short } else { 1900 + short }, &text[2..])
            }
            GENERALIZED_TIME if text.len() == 15 => (digits(&text[..4])?, &text[4..]),
            _ => return None,
        };
        if text.last() != Some(&b'Z') {
            return None;
        }
        let (month, day) = (digits(&text[0..2])?, digits(&text[2..4])?);
        let (hour, minute, second) = (digits(&text[4..6])?, digits(&text[6..8])?, digits(&text[8..10])?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        Some((days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second, rest))
    }

    fn digits(text: &[u8]) -> Option<i64> {
        text.iter().try_fold(0i64, |value, &b| b.is_ascii_digit().then(|| value * 10 + i64::from(b - b'0')))
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month_from_march = if month > 2 { month - 3 } else { month + 9 };
        let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dates_are_unix_seconds() {
            assert_eq!(days_from_civil(1970, 1, 1), 0);
            assert_eq!(days_from_civil(2000, 3, 1), 11_017);
            assert_eq!(time(b"\x17\x0d700101000000Z"), Some((0, &b""[..])));
            assert_eq!(time(b"\x18\x0f20240229120000Z"), Some((1_709_208_000, &b""[..])));
            assert_eq!(time(b"\x17\x0d491231235959Z").map(|t| t.0), Some(2_524_607_999));
            assert_eq!(time(b"\x17\x0d700101000000+"), None);
            assert_eq!(time(b"\x17\x0c70010100000Z"), None);
            assert_eq!(facts(b"\x30\x80"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate made the way `openssl req -x509` makes one: `CA:TRUE`.
    fn self_signed_ca(names: &[&str], dates: Option<(i32, i32)>, server_auth: bool) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or("x"));
        if let Some((from, to)) = dates {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        if !server_auth {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier(trusted: Vec<CertificateDer<'static>>, unverified: Option<&str>) -> RegistryVerifier {
        let provider = rustls::crypto::ring::default_provider();
        let mut roots = RootCertStore::empty();
        for certificate in &trusted {
            roots.add(certificate.clone()).unwrap();
        }
        let webpki = (!roots.is_empty()).then(|| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider.clone())).build().unwrap()
        });
        RegistryVerifier {
            seen: Arc::default(),
            webpki,
            trusted,
            unverified: unverified.map(|h| ServerName::try_from(h.to_owned()).unwrap()),
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn check(verifier: &RegistryVerifier, presented: &CertificateDer<'static>, host: &str) -> Result<(), String> {
        let name = ServerName::try_from(host.to_owned()).unwrap();
        verifier.verify_server_cert(presented, &[], &name, &[], UnixTime::now()).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_trusted_self_signed_ca_certificate_is_accepted_with_its_name_and_dates_checked() {
        let certificate = self_signed_ca(&["registry.test", "127.0.0.1"], None, true);
        let trusting = verifier(vec![certificate.clone()], None);
        assert_eq!(check(&trusting, &certificate, "registry.test"), Ok(()));
        assert_eq!(check(&trusting, &certificate, "127.0.0.1"), Ok(()));
        let wrong_name = check(&trusting, &certificate, "other.test").unwrap_err();
        assert!(wrong_name.contains("not valid for name"), "{wrong_name}");

        // Not trusted: WebPKI's refusal stands.
        let other = self_signed_ca(&["registry.test"], None, true);
        let stranger = check(&verifier(vec![other], None), &certificate, "registry.test").unwrap_err();
        assert!(stranger.contains("CA:TRUE"), "{stranger}");

        let expired = self_signed_ca(&["registry.test"], Some((2000, 2001)), true);
        assert!(check(&verifier(vec![expired.clone()], None), &expired, "registry.test").is_err());
        let future = self_signed_ca(&["registry.test"], Some((2400, 2401)), true);
        assert!(check(&verifier(vec![future.clone()], None), &future, "registry.test").is_err());
        let client_only = self_signed_ca(&["registry.test"], None, false);
        let purpose = check(&verifier(vec![client_only.clone()], None), &client_only, "registry.test").unwrap_err();
        assert!(purpose.to_lowercase().contains("purpose"), "{purpose}");
    }

    #[test]
    fn only_the_insecure_host_goes_unverified() {
        let certificate = self_signed_ca(&["registry.test"], None, true);
        let insecure = verifier(Vec::new(), Some("127.0.0.1"));
        assert_eq!(check(&insecure, &certificate, "127.0.0.1"), Ok(()));
        assert!(check(&insecure, &certificate, "registry.test").is_err(), "a token realm elsewhere is checked");
    }

    #[test]
    fn certificate_facts_are_read() {
        let certificate = self_signed_ca(&["registry.test"], Some((2020, 2030)), true);
        let facts = der::facts(certificate.as_ref()).unwrap();
        assert_eq!((facts.not_before, facts.not_after), (1_577_836_800, 1_893_456_000));
        assert!(facts.for_servers);
        assert!(!der::facts(self_signed_ca(&["x.test"], None, false).as_ref()).unwrap().for_servers);
    }
}
