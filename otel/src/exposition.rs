//! Reading the OpenMetrics text that `prometheus-client` writes (the processes' own `/metrics`),
//! so the OTLP metrics export reports exactly those series. A strict reader of that one
//! writer's output: `# TYPE` lines name families, samples follow their family.

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic (`counter`).
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram` (its `_count` and `_sum` samples are kept).
    Histogram,
}

/// A family: name (without `_total`) and type, with its help text.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: Kind,
    pub help: String,
}

/// One sample: its family, the series suffix (``, `_total`, `_count`, `_sum`, `_bucket`,
/// `_created`), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family's name.
    pub family: String,
    pub suffix: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The families and samples of `text` (families of other types and malformed lines are
/// skipped).
pub fn parse(text: &str) -> (Vec<Family>, Vec<Sample>) {
    let mut families: Vec<Family> = Vec::new();
    let mut samples = Vec::new();
    let mut help: Option<(String, String)> = None;
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((n, h)) = rest.split_once(' ') {
                help = Some((n.to_string(), h.to_string()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = None;
            let Some((name, t)) = rest.split_once(' ') else {
                continue;
            };
            let kind = match t {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                _ => continue,
            };
            let help = match &help {
                Some((n, h)) if n == name => h.clone(),
                _ => String::new(),
            };
            families.push(Family {
                name: name.to_string(),
                kind,
                help,
            });
            current = Some(families.len() - 1);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some(f) = current else { continue };
        if let Some(s) = sample(line, &families[f].name) {
            samples.push(s);
        }
    }
    (families, samples)
}

fn sample(line: &str, fname: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let suffix = line[..name_end].strip_prefix(fname)?.to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (l, after) = labels_of(r)?;
        labels = l;
        rest = after;
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        family: fname.to_string(),
        suffix,
        labels,
        value,
    })
}

/// `k="v",…}` → the pairs and what follows `}`.
fn labels_of(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        if let Some(r) = s.strip_prefix('}') {
            return Some((out, r));
        }
        let (k, r) = s.split_once("=\"")?;
        let mut v = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    other => v.push(other),
                },
                '"' => break i,
                c => v.push(c),
            }
        };
        out.push((k.trim_start_matches(',').to_string(), v));
        s = r[end + 1..].trim_start_matches(',');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family as PFamily;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn reads_what_prometheus_client_writes() {
        let mut r = Registry::with_prefix("sw");
        let c = PFamily::<Vec<(String, String)>, Counter>::default();
        c.get_or_create(&vec![
            ("code".into(), "200".into()),
            ("path".into(), "/a b,c=d".into()),
        ])
        .inc_by(3);
        r.register("requests", "Requests", c);
        let g = Gauge::<i64>::default();
        g.set(-4);
        r.register("open", "Open", g);
        let h = Histogram::new([0.1, 1.0]);
        h.observe(0.5);
        h.observe(2.0);
        r.register("duration_seconds", "Durations", h);
        let mut text = String::new();
        encode(&mut text, &r).unwrap();
        let (fams, samples) = parse(&text);
        let names: Vec<(&str, Kind)> = fams.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        assert_eq!(
            names,
            vec![
                ("sw_requests", Kind::Counter),
                ("sw_open", Kind::Gauge),
                ("sw_duration_seconds", Kind::Histogram)
            ],
            "{text}"
        );
        assert_eq!(fams[0].help, "Requests.");
        let req = samples.iter().find(|s| s.family == "sw_requests").unwrap();
        assert_eq!(req.suffix, "_total");
        assert_eq!(req.value, 3.0);
        assert_eq!(
            req.labels,
            vec![
                ("code".to_string(), "200".to_string()),
                ("path".to_string(), "/a b,c=d".to_string())
            ]
        );
        let open = samples.iter().find(|s| s.family == "sw_open").unwrap();
        assert_eq!((open.suffix.as_str(), open.value), ("", -4.0));
        let count = samples
            .iter()
            .find(|s| s.family == "sw_duration_seconds" && s.suffix == "_count")
            .unwrap();
        assert_eq!(count.value, 2.0);
        let sum = samples
            .iter()
            .find(|s| s.family == "sw_duration_seconds" && s.suffix == "_sum")
            .unwrap();
        assert_eq!(sum.value, 2.5);
        assert!(samples
            .iter()
            .any(|s| s.suffix == "_bucket" && s.labels == vec![("le".into(), "+Inf".into())]));
    }

    #[test]
    fn escaped_label_values_and_garbage() {
        let (_, s) = parse("# TYPE x counter\nx_total{a=\"q\\\"\\\\\\n\",b=\"2\"} 1\n");
        assert_eq!(
            s[0].labels,
            vec![("a".into(), "q\"\\\n".into()), ("b".into(), "2".into())]
        );

        let (f, s) =
            parse("# TYPE x counter\nx_total{a=\"1} 2\ny 3\nx_total nope\n# TYPE z info\nz 1\n");
        assert_eq!(f.len(), 1);
        assert!(s.is_empty(), "{s:?}");
    }
}
