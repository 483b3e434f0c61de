//! `get certs [NAME]`: every certificate, uploaded and ACME-managed. Never a private key.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use switchyard_proto::admin::ListCertificatesRequest;

use crate::args::{Format, Global};
use crate::client::{status_error, Client};
use crate::output::{print_data, print_table};

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` ("-" for 0).
pub fn rfc3339(secs: i64) -> String {
    if secs == 0 {
        return "-".into();
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub async fn get(
    g: &Global,
    client: &mut Client,
    name: Option<&str>,
    consistent: bool,
) -> Result<ExitCode> {
    let r = client
        .list_certificates(ListCertificatesRequest {
            name: name.unwrap_or_default().to_string(),
            consistent,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    eprintln!("config version {}", r.version);
    match g.output {
        Format::Table => {
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            let rows: Vec<Vec<String>> = r
                .certificates
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        if c.names.is_empty() {
                            "-".into()
                        } else {
                            c.names.join(",")
                        },
                        dash(&c.issuer),
                        rfc3339(c.not_before),
                        rfc3339(c.not_after),
                        c.source.clone(),
                        c.status.clone(),
                        dash(&c.last_error),
                    ]
                })
                .collect();
            print_table(
                &[
                    "NAME",
                    "NAMES",
                    "ISSUER",
                    "NOT BEFORE",
                    "NOT AFTER",
                    "SOURCE",
                    "STATUS",
                    "LAST ERROR",
                ],
                &rows,
            );
        }
        f => {
            let items: Vec<_> = r
                .certificates
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name, "names": c.names, "issuer": c.issuer,
                        "notBefore": rfc3339(c.not_before), "notAfter": rfc3339(c.not_after),
                        "notBeforeUnix": c.not_before, "notAfterUnix": c.not_after,
                        "serial": c.serial, "source": c.source, "status": c.status,
                        "lastError": c.last_error, "failures": c.failures,
                        "nextAttemptUnix": c.next_attempt,
                        "ocspStatus": c.ocsp_status, "ocspNextUpdateUnix": c.ocsp_next_update,
                    })
                })
                .collect();
            print_data(f, &json!({ "certificates": items }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "-");
        assert_eq!(super::rfc3339(784_111_777), "1994-11-06T08:49:37Z");
        assert_eq!(super::rfc3339(1_709_251_200), "2024-03-01T00:00:00Z");
    }
}
