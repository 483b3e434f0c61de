//! RFC 2136 dynamic updates, TSIG-signed (RFC 8945) when a key is configured: one UPDATE per
//! record, adding it to (or deleting it from) the TXT set of its name.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hickory_proto::op::{update_message, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordSet, RecordType, TSigner};
use switchyard_config::acme::{parse_dns_server, tsig_algorithm};
use switchyard_config::Rfc2136;

use super::{wire, TxtRecord};

/// The TSIG signer of `c`, if it has a key. Errors never contain the secret.
pub fn signer(c: &Rfc2136) -> Result<Option<TSigner>, String> {
    let (Some(key), Some(secret)) = (&c.tsig_key, &c.tsig_secret) else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .map_err(|_| "rfc2136.tsigSecret is not base64".to_string())?;
    let alg = match tsig_algorithm(c.tsig_algorithm.as_deref().unwrap_or("")) {
        Some("hmac-sha384") => TsigAlgorithm::HmacSha384,
        Some("hmac-sha512") => TsigAlgorithm::HmacSha512,
        Some(_) => TsigAlgorithm::HmacSha256,
        None => return Err("rfc2136.tsigAlgorithm is not supported".into()),
    };
    let name = Name::from_ascii(key).map_err(|e| format!("rfc2136.tsigKey: {e}"))?;
    TSigner::new(bytes, alg, name, 300)
        .map(Some)
        .map_err(|e| format!("rfc2136 TSIG: {e}"))
}

/// Adds (`add`) or deletes every record of `records` at the configured name server.
pub async fn update(c: &Rfc2136, records: &[TxtRecord], add: bool) -> Result<(), String> {
    let server = parse_dns_server(&c.nameserver)
        .ok_or_else(|| format!("rfc2136.nameserver {:?} is not an address", c.nameserver))?;
    let signer = signer(c)?;
    let ttl = c.ttl.unwrap_or(120);
    for r in records {
        let name = Name::from_ascii(&r.fqdn).map_err(|e| format!("{}: {e}", r.fqdn))?;
        let zone = match c.zone.as_deref().filter(|z| !z.is_empty()) {
            Some(z) => {
                let mut z = Name::from_ascii(z).map_err(|e| format!("rfc2136.zone: {e}"))?;
                z.set_fqdn(true);
                z
            }
            None => wire::find_zone(server, &name).await?,
        };
        if !zone.zone_of(&name) {
            return Err(format!("{} is not in zone {zone}", r.fqdn));
        }
        let mut set = RecordSet::with_ttl(name.clone(), RecordType::TXT, ttl);
        set.add_rdata(RData::TXT(TXT::new(vec![r.value.clone()])));
        let mut msg = if add {
            update_message::append(set, zone.clone(), false, false)
        } else {
            update_message::delete_by_rdata(set, zone.clone(), false)
        };
        msg.metadata.id = rand::random();
        if let Some(s) = &signer {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            msg.finalize(s, now)
                .map_err(|e| format!("signing the update: {e}"))?;
        }
        let answer = wire::exchange(server, &msg).await?;
        let rcode = answer.metadata.response_code;
        if rcode != ResponseCode::NoError {
            let what = if add { "adding" } else { "deleting" };
            return Err(format!(
                "DNS server {server} refused {what} TXT {} in zone {zone}: {rcode}",
                r.fqdn
            ));
        }
    }
    Ok(())
}
