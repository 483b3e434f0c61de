//! OCSP stapling, the pure part: which certificates have a responder, the request for one, the
//! checks a response must pass before the cluster staples it, and when to fetch again.
//!
//! Formats come from the `x509-ocsp` crate (RFC 6960 types over `der`); signatures are checked
//! with ring, the workspace's one crypto provider. No I/O here: [`fetch`] does the HTTP and
//! [`stapler`] the leader's schedule.
//!
//! A staple is keyed by the SHA-256 fingerprint of the leaf certificate (lower-case hex), so a
//! replaced certificate never gets its predecessor's response: proxies compute the same
//! fingerprint when they load a certificate.

pub mod fetch;
pub mod stapler;

use std::time::Duration;

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, ExtendedKeyUsage};
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};

const AIA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const EC_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const EC_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Why a certificate cannot be stapled, or a response is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    /// The chain's PEM or DER is broken.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The leaf names a responder but the chain does not hold its issuer.
    #[error("the chain has no issuer certificate after the leaf (needed for the OCSP request)")]
    NoIssuer,
    /// The response is not a well-formed OCSP response.
    #[error("malformed OCSP response: {0}")]
    Malformed(String),
    /// The responder answered with an error status.
    #[error("the responder answered {0:?}")]
    Status(OcspResponseStatus),
    /// The response does not answer for this certificate.
    #[error("the response does not cover this certificate")]
    WrongCertificate,
    /// The signature does not verify with the issuer's key or a delegated responder's.
    #[error("the response's signature does not verify")]
    BadSignature,
    /// Validity: not yet valid, already past `nextUpdate`, or no `nextUpdate` at all.
    #[error("{0}")]
    Validity(String),
}

/// The SHA-256 fingerprint of a DER certificate, lower-case hex: the key of its staple.
pub fn fingerprint(der: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate the leader fetches OCSP responses for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// [`fingerprint`] of the leaf.
    pub fingerprint: String,
    /// The responder URL of the leaf's Authority Information Access extension.
    pub responder: String,
    /// The DER `OCSPRequest` (one SHA-1 CertID, as every responder accepts).
    pub request: Vec<u8>,
    cert_id: CertId,
    issuer: Certificate,
}

/// The OCSP target of a PEM chain (leaf first, its issuer next): `None` when the leaf names no
/// OCSP responder.
pub fn target(chain_pem: &str) -> Result<Option<Target>, OcspError> {
    let ders = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OcspError::Certificate(e.to_string()))?;
    let leaf_der = ders
        .first()
        .ok_or_else(|| OcspError::Certificate("no certificate in PEM".into()))?;
    let leaf =
        Certificate::from_der(leaf_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
    let Some(responder) = responder_url(&leaf) else {
        return Ok(None);
    };
    let issuer_der = ders.get(1).ok_or(OcspError::NoIssuer)?;
    let issuer =
        Certificate::from_der(issuer_der).map_err(|e| OcspError::Certificate(e.to_string()))?;
    if issuer.tbs_certificate.subject != leaf.tbs_certificate.issuer {
        return Err(OcspError::NoIssuer);
    }
    let cert_id = cert_id(&issuer, &leaf)?;
    let request = OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            ..TbsRequest::default()
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(|e| OcspError::Certificate(e.to_string()))?;
    Ok(Some(Target {
        fingerprint: fingerprint(leaf_der),
        responder,
        request,
        cert_id,
        issuer,
    }))
}

/// The first `http(s)` OCSP URL in the certificate's Authority Information Access.
fn responder_url(cert: &Certificate) -> Option<String> {
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == AIA)?;
    let aia = AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes()).ok()?;
    aia.0.iter().find_map(|d| match &d.access_location {
        GeneralName::UniformResourceIdentifier(u) if d.access_method == AD_OCSP => {
            let u = u.to_string();
            (u.starts_with("http://") || u.starts_with("https://")).then_some(u)
        }
        _ => None,
    })
}

fn cert_id(issuer: &Certificate, leaf: &Certificate) -> Result<CertId, OcspError> {
    use sha1::Digest;
    let err = |e: der::Error| OcspError::Certificate(e.to_string());
    let name = issuer.tbs_certificate.subject.to_der().map_err(err)?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    Ok(CertId {
        hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: SHA1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1::Sha1::digest(&name).to_vec()).map_err(err)?,
        issuer_key_hash: OctetString::new(sha1::Sha1::digest(key).to_vec()).map_err(err)?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    })
}

/// What a verified response says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `good`, `revoked` or `unknown`.
    pub status: &'static str,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds.
    pub next_update: i64,
}

/// Clock skew tolerated on `thisUpdate` (a responder a little ahead of us).
const SKEW_SECS: i64 = 300;

/// Checks a DER `OCSPResponse` for `t` at `now` (Unix seconds): successful, basic, answering
/// for exactly this certificate (issuer name and key hashes and serial), signed by the issuer or
/// by a responder certificate the issuer signed for OCSP signing, `thisUpdate` not in the
/// future, `nextUpdate` present and not passed. Responses without `nextUpdate` are refused:
/// nothing would say when to stop stapling them.
pub fn verify(der: &[u8], t: &Target, now: i64) -> Result<Verified, OcspError> {
    let malformed = |e: der::Error| OcspError::Malformed(e.to_string());
    let rsp = OcspResponse::from_der(der).map_err(malformed)?;
    if rsp.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::Status(rsp.response_status));
    }
    let bytes = rsp
        .response_bytes
        .ok_or_else(|| OcspError::Malformed("successful response without responseBytes".into()))?;
    if bytes.response_type != OCSP_BASIC {
        return Err(OcspError::Malformed(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed)?;
    let tbs = basic.tbs_response_data.to_der().map_err(malformed)?;
    let sig = basic
        .signature
        .as_bytes()
        .ok_or_else(|| OcspError::Malformed("signature is not whole bytes".into()))?;
    let alg = &basic.signature_algorithm.oid;
    let by_issuer = check_signature(&t.issuer, alg, &tbs, sig);
    let by_delegate = || {
        basic
            .certs
            .iter()
            .flatten()
            .any(|c| delegated_by(c, &t.issuer) && check_signature(c, alg, &tbs, sig))
    };
    if !by_issuer && !by_delegate() {
        return Err(OcspError::BadSignature);
    }
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| same_cert(&r.cert_id, &t.cert_id, &t.issuer))
        .ok_or(OcspError::WrongCertificate)?;
    let status = match single.cert_status {
        CertStatus::Good(_) => "good",
        CertStatus::Revoked(_) => "revoked",
        CertStatus::Unknown(_) => "unknown",
    };
    let secs = |g: &x509_ocsp::OcspGeneralizedTime| g.0.to_unix_duration().as_secs() as i64;
    let this_update = secs(&single.this_update);
    let next_update = single
        .next_update
        .as_ref()
        .map(secs)
        .ok_or_else(|| OcspError::Validity("the response has no nextUpdate".into()))?;
    if this_update > now + SKEW_SECS {
        return Err(OcspError::Validity(format!(
            "thisUpdate is {}s in the future",
            this_update - now
        )));
    }
    if next_update <= now {
        return Err(OcspError::Validity(format!(
            "nextUpdate passed {}s ago",
            now - next_update
        )));
    }
    Ok(Verified {
        status,
        this_update,
        next_update,
    })
}

/// Whether `got` names the same certificate as `want`: same serial, and the issuer hashes with
/// the algorithm the responder chose (SHA-1 as asked, or SHA-256).
fn same_cert(got: &CertId, want: &CertId, issuer: &Certificate) -> bool {
    if got.serial_number != want.serial_number {
        return false;
    }
    if got.hash_algorithm.oid == SHA1 {
        return got.issuer_name_hash == want.issuer_name_hash
            && got.issuer_key_hash == want.issuer_key_hash;
    }
    if got.hash_algorithm.oid == SHA256 {
        let Ok(name) = issuer.tbs_certificate.subject.to_der() else {
            return false;
        };
        let key = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let h = |b: &[u8]| {
            ring::digest::digest(&ring::digest::SHA256, b)
                .as_ref()
                .to_vec()
        };
        return got.issuer_name_hash.as_bytes() == h(&name).as_slice()
            && got.issuer_key_hash.as_bytes() == h(key).as_slice();
    }
    false
}

/// Whether `c` is a responder certificate `issuer` signed for OCSP signing (RFC 6960 §4.2.2.2).
fn delegated_by(c: &Certificate, issuer: &Certificate) -> bool {
    if c.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let ocsp_signing = c
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == EXT_KEY_USAGE)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&KP_OCSP_SIGNING));
    let Ok(tbs) = c.tbs_certificate.to_der() else {
        return false;
    };
    let Some(sig) = c.signature.as_bytes() else {
        return false;
    };
    ocsp_signing && check_signature(issuer, &c.signature_algorithm.oid, &tbs, sig)
}

/// Verifies `sig` over `msg` with `signer`'s public key and signature algorithm `alg`.
fn check_signature(signer: &Certificate, alg: &ObjectIdentifier, msg: &[u8], sig: &[u8]) -> bool {
    use ring::signature as s;
    let spki = &signer.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let ring_alg: &dyn s::VerificationAlgorithm = match (*alg, curve) {
        (ECDSA_SHA256, Some(EC_P256)) => &s::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA384, Some(EC_P256)) => &s::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA256, Some(EC_P384)) => &s::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, Some(EC_P384)) => &s::ECDSA_P384_SHA384_ASN1,
        (RSA_SHA1, _) => &s::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (RSA_SHA256, _) => &s::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, _) => &s::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, _) => &s::RSA_PKCS1_2048_8192_SHA512,
        (ED25519, _) => &s::ED25519,
        _ => return false,
    };
    let Some(key) = spki.subject_public_key.as_bytes() else {
        return false;
    };
    s::UnparsedPublicKey::new(ring_alg, key)
        .verify(msg, sig)
        .is_ok()
}

/// When a response is fetched again: halfway through its validity (Let's Encrypt's and most
/// servers' advice), so a responder outage of up to half the validity costs nothing; never
/// before `fetched + MIN_REFRESH`, so a responder issuing very short responses is not hammered.
pub fn refresh_at(this_update: i64, next_update: i64, fetched: i64) -> i64 {
    let half = this_update + (next_update - this_update).max(0) / 2;
    half.max(fetched + MIN_REFRESH.as_secs() as i64)
}

/// The shortest time between two fetches of one certificate's response.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);

/// How long to wait before retrying after `failures` consecutive failures: 5 s doubling to
/// 10 min. The stored response keeps being stapled meanwhile (until its `nextUpdate`).
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(7);
    Duration::from_secs(5u64 << exp).min(Duration::from_secs(600))
}

#[cfg(test)]
mod tests;
