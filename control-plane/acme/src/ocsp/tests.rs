use der::asn1::{BitString, GeneralizedTime, Ia5String};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, SigningKey,
};
use x509_cert::ext::pkix::AccessDescription;
use x509_ocsp::{OcspGeneralizedTime, ResponderId, ResponseData, SingleResponse, Version};

use super::*;

const NOW: i64 = 1_800_000_000;

struct Pki {
    ca_key: KeyPair,
    ca_params: CertificateParams,
    ca_pem: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
    Pki {
        ca_key,
        ca_params,
        ca_pem,
    }
}

fn aia(url: &str) -> CustomExtension {
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: AD_OCSP,
        access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(url).expect("ia5")),
    }]);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], aia.to_der().expect("der"))
}

impl Pki {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    /// A leaf (with an AIA OCSP URL when `url` is set), its chain PEM with the CA after it.
    fn leaf(&self, url: Option<&str>, serial: u8) -> String {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["a.test".to_string()]).expect("params");
        p.serial_number = Some(rcgen::SerialNumber::from(vec![serial]));
        if let Some(u) = url {
            p.custom_extensions.push(aia(u));
        }
        let leaf = p.signed_by(&key, &self.issuer()).expect("leaf");
        format!("{}{}", leaf.pem(), self.ca_pem)
    }

    /// A delegated responder certificate (with the OCSP-signing EKU when `eku`).
    fn delegate(&self, key: &KeyPair, eku: bool) -> Certificate {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Test OCSP responder");
        if eku {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        }
        let c = p.signed_by(key, &self.issuer()).expect("delegate");
        Certificate::from_der(c.der()).expect("parses")
    }
}

fn time(secs: i64) -> OcspGeneralizedTime {
    OcspGeneralizedTime(
        GeneralizedTime::from_unix_duration(Duration::from_secs(secs as u64)).expect("time"),
    )
}

/// A signed basic response for `id`.
fn response(
    id: &CertId,
    status: CertStatus,
    next: Option<i64>,
    signer: &KeyPair,
    certs: Option<Vec<Certificate>>,
) -> Vec<u8> {
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(vec![1; 20]).expect("octets")),
        produced_at: time(NOW - 10),
        responses: vec![SingleResponse {
            cert_id: id.clone(),
            cert_status: status,
            this_update: time(NOW - 10),
            next_update: next.map(time),
            single_extensions: None,
        }],
        response_extensions: None,
    };
    let sig = signer.sign(&tbs.to_der().expect("der")).expect("sign");
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: ECDSA_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(&sig).expect("bits"),
        certs,
    };
    OcspResponse::successful(basic)
        .expect("response")
        .to_der()
        .expect("der")
}

fn request_id(t: &Target) -> CertId {
    let req = OcspRequest::from_der(&t.request).expect("request decodes");
    req.tbs_request.request_list[0].req_cert.clone()
}

#[test]
fn targets_need_a_responder_and_an_issuer() {
    let p = pki();
    let t = target(&p.leaf(Some("http://127.0.0.1:9/ocsp"), 7))
        .expect("ok")
        .expect("has a responder");
    assert_eq!(t.responder, "http://127.0.0.1:9/ocsp");
    assert_eq!(t.fingerprint.len(), 64);
    // The request asks about this serial with SHA-1 hashes of the issuer.
    let id = request_id(&t);
    assert_eq!(id.serial_number.as_bytes(), &[7]);
    assert_eq!(id.hash_algorithm.oid, SHA1);
    assert_eq!(id.issuer_key_hash.as_bytes().len(), 20);
    assert_eq!(target(&p.leaf(None, 7)), Ok(None));
    // A responder but no issuer in the chain.
    let chain = p.leaf(Some("http://127.0.0.1:9/ocsp"), 7);
    let leaf_only = &chain[..chain.find("-----END CERTIFICATE-----").expect("end") + 26];
    assert_eq!(target(leaf_only), Err(OcspError::NoIssuer));
    assert!(matches!(target("junk"), Err(OcspError::Certificate(_))));
}

#[test]
fn a_good_response_signed_by_the_issuer_verifies() {
    let p = pki();
    let t = target(&p.leaf(Some("http://r/"), 7))
        .expect("ok")
        .expect("t");
    let der = response(
        &request_id(&t),
        CertStatus::good(),
        Some(NOW + 3600),
        &p.ca_key,
        None,
    );
    assert_eq!(
        verify(&der, &t, NOW),
        Ok(Verified {
            status: "good",
            this_update: NOW - 10,
            next_update: NOW + 3600,
        })
    );
    // Past nextUpdate: refused.
    assert!(matches!(
        verify(&der, &t, NOW + 3600),
        Err(OcspError::Validity(_))
    ));
    // Not yet valid (beyond the tolerated skew).
    assert!(matches!(
        verify(&der, &t, NOW - 1000),
        Err(OcspError::Validity(_))
    ));
    let revoked = CertStatus::Revoked(x509_ocsp::RevokedInfo {
        revocation_time: time(NOW - 100),
        revocation_reason: None,
    });
    let der = response(&request_id(&t), revoked, Some(NOW + 60), &p.ca_key, None);
    assert_eq!(verify(&der, &t, NOW).expect("verifies").status, "revoked");
}

#[test]
fn bad_responses_are_refused() {
    let p = pki();
    let t = target(&p.leaf(Some("http://r/"), 7))
        .expect("ok")
        .expect("t");
    let id = request_id(&t);
    let other = KeyPair::generate().expect("key");
    let der = response(&id, CertStatus::good(), Some(NOW + 60), &other, None);
    assert_eq!(verify(&der, &t, NOW), Err(OcspError::BadSignature));
    let mut wrong = id.clone();
    wrong.serial_number = x509_cert::serial_number::SerialNumber::new(&[8]).expect("serial");
    let der = response(&wrong, CertStatus::good(), Some(NOW + 60), &p.ca_key, None);
    assert_eq!(verify(&der, &t, NOW), Err(OcspError::WrongCertificate));
    let der = response(&id, CertStatus::good(), None, &p.ca_key, None);
    assert!(matches!(verify(&der, &t, NOW), Err(OcspError::Validity(_))));
    let later = OcspResponse::try_later().to_der().expect("der");
    assert_eq!(
        verify(&later, &t, NOW),
        Err(OcspError::Status(OcspResponseStatus::TryLater))
    );
    assert!(matches!(
        verify(b"\x30\x03junk", &t, NOW),
        Err(OcspError::Malformed(_))
    ));
    // A response for another issuer's certificate with the same serial.
    let q = pki();
    let t2 = target(&q.leaf(Some("http://r/"), 7))
        .expect("ok")
        .expect("t");
    let der = response(&id, CertStatus::good(), Some(NOW + 60), &p.ca_key, None);
    assert!(verify(&der, &t2, NOW).is_err());
}

#[test]
fn delegated_responders_need_the_ocsp_signing_purpose() {
    let p = pki();
    let t = target(&p.leaf(Some("http://r/"), 7))
        .expect("ok")
        .expect("t");
    let id = request_id(&t);
    let key = KeyPair::generate().expect("key");
    let ok = p.delegate(&key, true);
    let der = response(
        &id,
        CertStatus::good(),
        Some(NOW + 60),
        &key,
        Some(vec![ok]),
    );
    assert_eq!(verify(&der, &t, NOW).expect("verifies").status, "good");
    let no_eku = p.delegate(&key, false);
    let der = response(
        &id,
        CertStatus::good(),
        Some(NOW + 60),
        &key,
        Some(vec![no_eku]),
    );
    assert_eq!(verify(&der, &t, NOW), Err(OcspError::BadSignature));
}

#[test]
fn refresh_halfway_with_a_floor_and_backoff_doubles() {
    assert_eq!(refresh_at(1000, 2000, 1000), 1500);
    // A response valid for 4 s: not fetched again for MIN_REFRESH.
    assert_eq!(refresh_at(1000, 1004, 1000), 1005);
    // Nonsense order (nextUpdate before thisUpdate) still schedules after the floor.
    assert_eq!(refresh_at(1000, 900, 1000), 1005);
    assert_eq!(backoff(1), Duration::from_secs(5));
    assert_eq!(backoff(2), Duration::from_secs(10));
    assert_eq!(backoff(4), Duration::from_secs(40));
    assert_eq!(backoff(100), Duration::from_secs(600));
}
