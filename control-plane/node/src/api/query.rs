//! Traefik's list parameters (`pkg/api/criterion.go`, `sort.go`): `search`, `status`,
//! `serviceName`, `middlewareName` filters, `sortBy`/`direction`, and `page`/`per_page` paging
//! with the `X-Next-Page` header. Pure.

use std::collections::BTreeMap;

pub const NEXT_PAGE_HEADER: &str = "X-Next-Page";
const DEFAULT_PER_PAGE: usize = 100;

/// The query string, decoded (the last value of a repeated key wins... as Go's `Get` takes the
/// first, so does this).
#[derive(Debug, Clone, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        let mut m = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            m.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Params(m)
    }

    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
}

/// Traefik's `searchCriterion`.
#[derive(Debug, Clone, Default)]
pub struct Criterion {
    pub search: String,
    pub status: String,
    pub service_name: String,
    pub middleware_name: String,
}

impl Criterion {
    pub fn from(p: &Params) -> Self {
        Criterion {
            search: p.get("search").to_string(),
            status: p.get("status").to_string(),
            service_name: p.get("serviceName").to_string(),
            middleware_name: p.get("middlewareName").to_string(),
        }
    }

    pub fn with_status(&self, status: &str) -> bool {
        self.status.is_empty() || status.eq_ignore_ascii_case(&self.status)
    }

    pub fn search_in(&self, values: &[&str]) -> bool {
        if self.search.is_empty() {
            return true;
        }
        let needle = self.search.to_lowercase();
        values.iter().any(|v| v.to_lowercase().contains(&needle))
    }

    /// A router's service reference against `serviceName` (Traefik compares the qualified name
    /// when the reference has a provider, else the bare one).
    pub fn filter_service(&self, name: &str) -> bool {
        if self.service_name.is_empty() {
            return true;
        }
        if name.contains('@') {
            return self.service_name == name;
        }
        self.service_name.split('@').next() == Some(name)
    }

    pub fn filter_middleware(&self, names: &[&str]) -> bool {
        self.middleware_name.is_empty() || names.contains(&self.middleware_name.as_str())
    }
}

/// Which slice of the results a page is, and the next page number (1 when this is the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub start: usize,
    pub end: usize,
    pub next: usize,
}

/// Traefik's `pagination`: `per_page` (default 100) and `page` (default 1) must be positive; a
/// page past the end (other than the first) is a 400.
pub fn page(p: &Params, total: usize) -> Result<Page, String> {
    let int = |key: &str, default: usize| -> Result<usize, String> {
        let raw = p.get(key);
        if raw.is_empty() {
            return Ok(default);
        }
        match raw.parse::<i64>() {
            Ok(v) if v > 0 => Ok(v as usize),
            Ok(v) => Err(format!("invalid request: {key}: {v}")),
            Err(_) => Err(format!("invalid request: {key}: 0")),
        }
    };
    let per_page = int("per_page", DEFAULT_PER_PAGE)?;
    let page = int("page", 1)?;
    let start = (page - 1).saturating_mul(per_page);
    if start != 0 && start >= total {
        return Err(format!(
            "invalid request: page: {page}, per_page: {per_page}"
        ));
    }
    let end = start.saturating_add(per_page).min(total);
    let next = if page.saturating_mul(per_page) < total {
        page + 1
    } else {
        1
    };
    Ok(Page { start, end, next })
}

/// Sorts by the key `sortBy` selects (see [`sort_key`]), `direction` `asc` (default) or `desc`;
/// ties keep name order.
pub fn sort_by<T>(p: &Params, items: &mut [T], key: impl Fn(&T, &str) -> SortKey) {
    let by = match p.get("sortBy") {
        "" => "name",
        s => s,
    };
    // Keys computed once per item (10k routers sort in a few milliseconds).
    items.sort_by_cached_key(|x| (key(x, by), key(x, "name")));
    if p.get("direction") == "desc" {
        items.reverse();
    }
}

/// A sort key: text or number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q))
    }

    // Ported from traefik pkg/api/handler_http_test.go (pagination cases) and criterion.go.
    #[test]
    fn pagination_as_traefik() {
        // 10 items, per_page 7: page 1 → [0,7) next 2; page 2 → [7,10) next 1.
        assert_eq!(
            page(&params("per_page=7"), 10),
            Ok(Page {
                start: 0,
                end: 7,
                next: 2
            })
        );
        assert_eq!(
            page(&params("page=2&per_page=7"), 10),
            Ok(Page {
                start: 7,
                end: 10,
                next: 1
            })
        );
        // Exactly filled last page.
        assert_eq!(
            page(&params("page=2&per_page=5"), 10),
            Ok(Page {
                start: 5,
                end: 10,
                next: 1
            })
        );
        // Empty list: page 1 is fine.
        assert_eq!(
            page(&params(""), 0),
            Ok(Page {
                start: 0,
                end: 0,
                next: 1
            })
        );
        // Past the end is a 400 with Traefik's text.
        assert_eq!(
            page(&params("page=3&per_page=5"), 10),
            Err("invalid request: page: 3, per_page: 5".into())
        );
        assert_eq!(
            page(&params("per_page=0"), 3),
            Err("invalid request: per_page: 0".into())
        );
        assert_eq!(
            page(&params("page=-1"), 3),
            Err("invalid request: page: -1".into())
        );
        assert!(page(&params("page=x"), 3).is_err());
        // Default 100 per page.
        assert_eq!(
            page(&params(""), 250),
            Ok(Page {
                start: 0,
                end: 100,
                next: 2
            })
        );
    }

    #[test]
    fn criterion_as_traefik() {
        let c = Criterion::from(&params("search=FOO&status=Enabled"));
        assert!(c.with_status("enabled"));
        assert!(!c.with_status("disabled"));
        assert!(c.search_in(&["Host(`x`)", "myfoo@file"]));
        assert!(!c.search_in(&["bar"]));
        let s = Criterion::from(&params("serviceName=foo-service@myprovider"));
        assert!(s.filter_service("foo-service"));
        assert!(s.filter_service("foo-service@myprovider"));
        assert!(!s.filter_service("foo-service@other"));
        let m = Criterion::from(&params("middlewareName=auth"));
        assert!(m.filter_middleware(&["x", "auth"]));
        assert!(!m.filter_middleware(&["auth@file"]));
    }

    #[test]
    fn sorting() {
        let mut v = vec![("b", 2), ("a", 3), ("c", 1)];
        let key = |x: &(&str, i64), by: &str| match by {
            "priority" => SortKey::Int(x.1),
            _ => SortKey::Text(x.0.to_string()),
        };
        sort_by(&params(""), &mut v, key);
        assert_eq!(v, [("a", 3), ("b", 2), ("c", 1)]);
        sort_by(&params("sortBy=priority"), &mut v, key);
        assert_eq!(v, [("c", 1), ("b", 2), ("a", 3)]);
        sort_by(&params("sortBy=name&direction=desc"), &mut v, key);
        assert_eq!(v, [("c", 1), ("b", 2), ("a", 3)]);
    }
}
