//! ACME metrics, registered into the node's registry (prefix `switchyard_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrderLabels {
    pub resolver: String,
    /// `issued`, `failed`, `rate_limited`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabels {
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResolverLabels {
    pub resolver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OcspLabels {
    /// `stapled` (a verified response was committed) or `failed` (fetch or check failed).
    pub result: String,
}

#[derive(Clone, Default)]
pub struct AcmeMetrics {
    /// OCSP fetches by this node (as leader), by result.
    pub ocsp_fetches: Family<OcspLabels, Counter>,
    /// `nextUpdate` of every stored OCSP staple (Unix seconds), by certificate fingerprint.
    pub ocsp_next_update: Family<CertLabels, Gauge>,
    /// Orders finished by this node (as leader), by result.
    pub orders: Family<OrderLabels, Counter>,
    /// Orders this node started at the CA (new or restarted; a resumed order is not counted).
    pub orders_created: Family<ResolverLabels, Counter>,
    /// Renewals (orders for a certificate that already had one) that failed.
    pub renewal_failures: Family<ResolverLabels, Counter>,
    /// `notAfter` of every ACME certificate in the store (Unix seconds), on every node.
    pub not_after: Family<CertLabels, Gauge>,
    /// Consecutive failures of every ACME certificate, on every node.
    pub failures: Family<CertLabels, Gauge>,
}

impl AcmeMetrics {
    /// Sets the per-certificate gauges from the store (called before each scrape, on every
    /// node); certificates no longer in the store disappear.
    pub fn refresh(&self, st: &switchyard_store::ClusterState) {
        self.not_after.clear();
        self.failures.clear();
        self.ocsp_next_update.clear();
        for (fp, s) in &st.config.managed.ocsp {
            let l = CertLabels { name: fp.clone() };
            self.ocsp_next_update.get_or_create(&l).set(s.next_update);
        }
        for (name, c) in &st.acme.certificates {
            let l = CertLabels { name: name.clone() };
            self.not_after.get_or_create(&l).set(c.not_after);
            self.failures.get_or_create(&l).set(i64::from(c.failures));
        }
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "ocsp_fetches",
            "OCSP responses fetched by this node as leader, by result (stapled, failed)",
            self.ocsp_fetches.clone(),
        );
        r.register(
            "ocsp_next_update_seconds",
            "nextUpdate of each stored OCSP staple (Unix seconds), by leaf SHA-256 fingerprint",
            self.ocsp_next_update.clone(),
        );
        r.register(
            "acme_orders",
            "ACME orders finished by this node as leader, by result",
            self.orders.clone(),
        );
        r.register(
            "acme_orders_created",
            "ACME orders this node created at the CA",
            self.orders_created.clone(),
        );
        r.register(
            "acme_renewal_failures",
            "Failed renewals of ACME certificates",
            self.renewal_failures.clone(),
        );
        r.register(
            "acme_certificate_not_after_seconds",
            "Expiry of each ACME certificate (Unix seconds)",
            self.not_after.clone(),
        );
        r.register(
            "acme_certificate_failures",
            "Consecutive failed orders of each ACME certificate",
            self.failures.clone(),
        );
    }
}
