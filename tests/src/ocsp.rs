//! OCSP test fixtures: a test CA (rcgen) issuing leaves whose Authority Information Access
//! names a responder, and that responder: a small HTTP server answering `POST`ed OCSP requests
//! with `good` responses signed by the CA (built with `x509-ocsp`, the crate the control plane
//! parses them with). It can be stopped (connections refused) to play a failing responder.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::{BitString, GeneralizedTime, Ia5String, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, IsCa, Issuer, KeyPair, SigningKey,
};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId,
    ResponseData, SingleResponse, Version,
};

const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");

/// A CA for tests (ECDSA P-256).
pub struct TestCa {
    key: KeyPair,
    params: CertificateParams,
    /// The CA certificate, PEM.
    pub pem: String,
    /// The CA certificate, DER.
    pub der: Vec<u8>,
}

/// A leaf the CA issued.
pub struct Leaf {
    /// Leaf then CA, PEM (what `certFile` holds).
    pub chain_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// The leaf, DER.
    pub der: Vec<u8>,
    /// Its serial number (big-endian bytes).
    pub serial: Vec<u8>,
}

impl TestCa {
    /// A new CA named `cn`.
    pub fn new(cn: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key,
            params,
        }
    }

    /// A leaf for `names`, with an AIA OCSP URL when `ocsp_url` is set, and serial `serial`.
    pub fn leaf(&self, names: &[&str], ocsp_url: Option<&str>, serial: u64) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
        let serial: Vec<u8> = serial
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        p.serial_number = Some(rcgen::SerialNumber::from(serial.clone()));
        if let Some(url) = ocsp_url {
            let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: AD_OCSP,
                access_location: GeneralName::UniformResourceIdentifier(
                    Ia5String::new(url).expect("URL"),
                ),
            }]);
            p.custom_extensions.push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                aia.to_der().expect("AIA"),
            ));
        }
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = p.signed_by(&key, &issuer).expect("leaf");
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            serial,
        }
    }

    /// A successful OCSP response to `request` (DER): `good` for every certificate asked
    /// about, valid from now for `validity`, signed by the CA.
    pub fn respond(&self, request: &[u8], validity: Duration) -> Result<Vec<u8>, String> {
        let req = OcspRequest::from_der(request).map_err(|e| e.to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let now = Duration::from_secs(now.as_secs());
        let t = |d: Duration| {
            GeneralizedTime::from_unix_duration(d)
                .map(OcspGeneralizedTime)
                .map_err(|e| e.to_string())
        };
        let responses = req
            .tbs_request
            .request_list
            .iter()
            .map(|r| {
                Ok(SingleResponse {
                    cert_id: r.req_cert.clone(),
                    cert_status: CertStatus::good(),
                    this_update: t(now)?,
                    next_update: Some(t(now + validity)?),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(vec![0x5a; 20]).map_err(|e| e.to_string())?,
            ),
            produced_at: t(now)?,
            responses,
            response_extensions: None,
        };
        let sig = self
            .key
            .sign(&tbs.to_der().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                oid: ECDSA_SHA256,
                parameters: None,
            },
            signature: BitString::from_bytes(&sig).map_err(|e| e.to_string())?,
            certs: None,
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(|e| e.to_string())
    }
}

/// What a stapled response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StapleInfo {
    /// `good`, `revoked`, `unknown`.
    pub status: &'static str,
    /// Serial of the certificate it answers for.
    pub serial: Vec<u8>,
    /// Unix seconds.
    pub this_update: u64,
    /// Unix seconds.
    pub next_update: u64,
}

/// Decodes a stapled OCSP response (a single basic response).
pub fn parse_staple(der: &[u8]) -> Result<StapleInfo, String> {
    let rsp = OcspResponse::from_der(der).map_err(|e| format!("OCSPResponse: {e}"))?;
    let bytes = rsp
        .response_bytes
        .ok_or_else(|| format!("status {:?} without a response", rsp.response_status))?;
    if bytes.response_type != OCSP_BASIC {
        return Err(format!("response type {}", bytes.response_type));
    }
    let basic =
        BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| e.to_string())?;
    let single = basic
        .tbs_response_data
        .responses
        .first()
        .ok_or("no single response")?;
    Ok(StapleInfo {
        status: match single.cert_status {
            CertStatus::Good(_) => "good",
            CertStatus::Revoked(_) => "revoked",
            CertStatus::Unknown(_) => "unknown",
        },
        serial: single.cert_id.serial_number.as_bytes().to_vec(),
        this_update: single.this_update.0.to_unix_duration().as_secs(),
        next_update: single
            .next_update
            .map(|t| t.0.to_unix_duration().as_secs())
            .unwrap_or(0),
    })
}

/// The test responder: HTTP/1.1 on loopback, `POST` of a DER request → DER response.
pub struct OcspResponder {
    addr: String,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl OcspResponder {
    /// Starts answering for `ca` with responses valid for `validity`.
    pub fn start(ca: Arc<TestCa>, validity: Duration) -> OcspResponder {
        let addr = crate::free_addr();
        let listener = TcpListener::bind(&addr).expect("binding the OCSP responder");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (s, r) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let ca = ca.clone();
                let r = r.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &ca, validity, &r);
                });
            }
        });
        OcspResponder {
            addr,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The URL to put in certificates.
    pub fn url(&self) -> String {
        format!("http://{}/ocsp", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops listening: connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    conn: TcpStream,
    ca: &TestCa,
    validity: Duration,
    requests: &AtomicUsize,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut rd = BufReader::new(conn.try_clone()?);
    let mut len = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if rd.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len.min(64 * 1024)];
    rd.read_exact(&mut body)?;
    let mut w = conn;
    match ca.respond(&body, validity) {
        Ok(der) => {
            requests.fetch_add(1, Ordering::SeqCst);
            write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                der.len()
            )?;
            w.write_all(&der)
        }
        Err(e) => write!(
            w,
            "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{e}",
            e.len()
        ),
    }
}
