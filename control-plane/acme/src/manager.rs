//! The leader-only loop and the order state machine against the CA.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, LetsEncrypt, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use switchyard_config::{AcmeResolver, KeyPair};
use switchyard_store::acme::IssuedInfo;
use switchyard_store::{AcmeCommand, ClusterState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{CaClient, RetryAfter};
use crate::metrics::{OrderLabels, ResolverLabels};
use crate::plan::{self, Due};
use crate::{AcmeMetrics, Cluster};

/// How long the manager waits for every proxy to hold the challenge answers before telling the
/// CA to validate anyway.
const PROXY_WAIT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(500);
/// An order still in the store after its task ended (its failure could not be committed, e.g. no
/// quorum) is resumed again only after this long, so the CA is not polled in a tight loop.
const RESUME_COOLDOWN: Duration = Duration::from_secs(5);

/// Why an order failed.
#[derive(Debug)]
struct Failure {
    msg: String,
    rate_limited: bool,
    /// Retry right away (e.g. the order must be restarted).
    immediate: bool,
}

impl Failure {
    fn new(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            rate_limited: false,
            immediate: false,
        }
    }
}

impl From<instant_acme::Error> for Failure {
    fn from(e: instant_acme::Error) -> Self {
        let rate_limited = matches!(
            &e,
            instant_acme::Error::Api(p)
                if p.r#type.as_deref().is_some_and(|t| t.ends_with(":rateLimited"))
        );
        Self {
            msg: e.to_string(),
            rate_limited,
            immediate: false,
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn go_duration(v: Option<&str>, default: Duration) -> Duration {
    v.and_then(|v| switchyard_config::duration::parse_go_duration(v).ok())
        .filter(|ns| *ns >= 0)
        .map(|ns| Duration::from_nanos(ns as u64))
        .unwrap_or(default)
}

fn ca_url(a: &AcmeResolver) -> String {
    a.ca_server
        .clone()
        .unwrap_or_else(|| LetsEncrypt::Production.url().to_string())
}

/// The ACME manager of one control node.
pub struct Manager<C: Cluster> {
    cluster: Arc<C>,
    metrics: AcmeMetrics,
    /// Session-ticket key rotation period (zero: no cluster ticket keys).
    ticket_rotation: Duration,
    /// Serializes account creation so concurrent orders of one resolver share one account.
    account_lock: tokio::sync::Mutex<()>,
}

impl<C: Cluster> Manager<C> {
    /// `ticket_rotation`: how often the leader rotates the cluster's session-ticket keys (zero
    /// disables them: each proxy then keeps its own resumption state).
    pub fn new(cluster: Arc<C>, metrics: AcmeMetrics, ticket_rotation: Duration) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            metrics,
            ticket_rotation,
            account_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Runs until `stop` becomes true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut leading = false;
        let mut last_renew_check: HashMap<String, Instant> = HashMap::new();
        let mut cooldown: HashMap<String, Instant> = HashMap::new();
        let mut stapler = crate::ocsp::stapler::Stapler::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                r = stop.changed() => if r.is_err() || *stop.borrow() {
                    for (_, t) in tasks.drain() { t.abort(); }
                    return;
                }
            }
            if !self.cluster.is_leader() {
                if leading {
                    tracing::info!("no longer the leader: ACME orders left to the next leader");
                    for (_, t) in tasks.drain() {
                        t.abort();
                    }
                    last_renew_check.clear();
                    stapler.reset();
                }
                leading = false;
                continue;
            }
            if !leading {
                if let Err(e) = self.cluster.linearize().await {
                    tracing::debug!(error = %e, "ACME: leadership not confirmed yet");
                    continue;
                }
                leading = true;
            }
            let now = Instant::now();
            tasks.retain(|name, t| {
                if t.is_finished() {
                    cooldown.insert(name.clone(), now + RESUME_COOLDOWN);
                    false
                } else {
                    true
                }
            });
            cooldown.retain(|_, until| *until > now);
            let st = self.cluster.state();
            self.reconcile(&st, &mut tasks, &mut last_renew_check, &cooldown);
            self.rotate_ticket_keys(&st).await;
            stapler
                .tick(&st.config, &self.cluster, &self.metrics, now_unix() as i64)
                .await;
        }
    }

    /// Generates and commits a new session-ticket key when the newest is a period old.
    async fn rotate_ticket_keys(&self, st: &ClusterState) {
        let keys = &st.config.managed.ticket_keys;
        if keys.is_empty() && !crate::tickets::wanted(&st.config) {
            return;
        }
        let now = now_unix();
        if !crate::tickets::due(keys, self.ticket_rotation, now) {
            return;
        }
        let new = crate::tickets::new_key(self.ticket_rotation, now);
        let name = new.name.clone();
        let keys = crate::tickets::rotate(keys, new);
        match self.cluster.propose(AcmeCommand::TicketKeys { keys }).await {
            Ok(()) => tracing::info!(key = %name, "TLS session-ticket keys rotated"),
            Err(e) => tracing::warn!(error = %e, "TLS session-ticket key rotation not committed"),
        }
    }

    fn reconcile(
        self: &Arc<Self>,
        st: &ClusterState,
        tasks: &mut HashMap<String, JoinHandle<()>>,
        last_renew_check: &mut HashMap<String, Instant>,
        cooldown: &HashMap<String, Instant>,
    ) {
        // Orders in flight (ours, or a previous leader's): finish or restart them.
        for name in st.acme.orders.keys() {
            if tasks.contains_key(name) || cooldown.contains_key(name) {
                continue;
            }
            tracing::info!(cert = %name, "ACME: resuming order in flight");
            let me = self.clone();
            let n = name.clone();
            tasks.insert(name.clone(), tokio::spawn(async move { me.order(n).await }));
        }
        let now = now_unix();
        let mut renew_ok: HashMap<String, bool> = HashMap::new();
        for (name, want) in plan::wanted(&st.config) {
            if tasks.contains_key(&name) || st.acme.orders.contains_key(&name) {
                continue;
            }
            let Some(a) = st
                .config
                .certificates_resolvers
                .get(&want.resolver)
                .and_then(|r| r.acme.as_ref())
            else {
                continue;
            };
            let installed = st
                .config
                .managed
                .certificates
                .get(&name)
                .map(|m| m.domains.as_slice());
            let due = plan::due(&want, st.acme.certificates.get(&name), installed, a, now);
            let go = match due {
                None => false,
                Some(Due::Missing) => true,
                Some(Due::Renew) => {
                    let interval = plan::check_interval(a);
                    *renew_ok.entry(want.resolver.clone()).or_insert_with(|| {
                        last_renew_check
                            .get(&want.resolver)
                            .is_none_or(|t| t.elapsed() >= interval)
                    })
                }
            };
            if !go {
                continue;
            }
            tracing::info!(cert = %name, domains = ?want.domains, reason = ?due, "ACME: ordering");
            let me = self.clone();
            let n = name.clone();
            let cmd = AcmeCommand::OrderStarted {
                name: name.clone(),
                resolver: want.resolver.clone(),
                domains: want.domains.clone(),
            };
            tasks.insert(
                name,
                tokio::spawn(async move {
                    if let Err(e) = me.cluster.propose(cmd).await {
                        tracing::warn!(cert = %n, error = %e, "ACME: could not record the order");
                        return;
                    }
                    me.order(n).await
                }),
            );
        }
        for (resolver, checked) in renew_ok {
            if checked {
                last_renew_check.insert(resolver, Instant::now());
            }
        }
    }

    /// Drives the order in flight for `name` to an installed certificate, or records the failure.
    async fn order(self: Arc<Self>, name: String) {
        let Some(rec) = self.cluster.state().acme.orders.get(&name).cloned() else {
            return;
        };
        let resolver = rec.resolver.clone();
        let renewal = self
            .cluster
            .state()
            .config
            .managed
            .certificates
            .contains_key(&name);
        let mut retry_slot = RetryAfter::default();
        let result = self.drive(&name, &mut retry_slot).await;
        let failure = match result {
            Ok(()) => {
                tracing::info!(cert = %name, "ACME: certificate issued and installed");
                self.metrics
                    .orders
                    .get_or_create(&OrderLabels {
                        resolver,
                        result: "issued".into(),
                    })
                    .inc();
                return;
            }
            Err(f) => f,
        };
        if !self.cluster.is_leader() {
            tracing::info!(cert = %name, error = %failure.msg, "ACME: order interrupted by a leader change");
            return;
        }
        let failures = self
            .cluster
            .state()
            .acme
            .certificates
            .get(&name)
            .map(|c| c.failures)
            .unwrap_or(0)
            .saturating_add(1);
        let now = now_unix();
        let retry_after = retry_slot
            .lock()
            .ok()
            .and_then(|g| *g)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let next = plan::next_attempt(
            now,
            failures,
            failure.immediate,
            failure.rate_limited,
            retry_after,
        );
        tracing::warn!(cert = %name, error = %failure.msg, rate_limited = failure.rate_limited,
            retry_in_s = next.saturating_sub(now), "ACME: order failed");
        let result = if failure.rate_limited {
            "rate_limited"
        } else {
            "failed"
        };
        self.metrics
            .orders
            .get_or_create(&OrderLabels {
                resolver: resolver.clone(),
                result: result.into(),
            })
            .inc();
        if renewal {
            self.metrics
                .renewal_failures
                .get_or_create(&ResolverLabels { resolver })
                .inc();
        }
        let cmd = AcmeCommand::Failed {
            name: name.clone(),
            error: failure.msg,
            next_attempt: next,
        };
        if let Err(e) = self.cluster.propose(cmd).await {
            tracing::warn!(cert = %name, error = %e, "ACME: could not record the failure");
        }
    }

    fn resolver(&self, name: &str) -> Result<AcmeResolver, Failure> {
        self.cluster
            .state()
            .config
            .certificates_resolvers
            .get(name)
            .and_then(|r| r.acme.clone())
            .ok_or_else(|| Failure::new(format!("resolver {name:?} is not configured")))
    }

    async fn propose(&self, cmd: AcmeCommand) -> Result<(), Failure> {
        self.cluster
            .propose(cmd)
            .await
            .map_err(|e| Failure::new(format!("cannot record an ACME step: {e}")))
    }

    /// The resolver's account: restored from the store, or created at the CA and committed
    /// before it is used.
    async fn account(
        &self,
        resolver: &str,
        a: &AcmeResolver,
    ) -> Result<(Account, RetryAfter), Failure> {
        let _guard = self.account_lock.lock().await;
        let ca = ca_url(a);
        let (client, slot) = CaClient::new(a).map_err(|e| Failure::new(e.to_string()))?;
        let builder = Account::builder_with_http(Box::new(client));
        let email = a.email.clone().unwrap_or_default();
        let stored = self.cluster.state().acme.accounts.get(resolver).cloned();
        if let Some(acc) = stored.filter(|x| x.ca_server == ca && x.email == email) {
            let creds: AccountCredentials = serde_json::from_str(&acc.credentials_json)
                .map_err(|e| Failure::new(format!("stored account of {resolver:?}: {e}")))?;
            let account = builder.from_credentials(creds).await?;
            return Ok((account, slot));
        }
        let contact = a.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = match &a.eab {
            Some(e) => {
                let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(e.hmac_encoded.trim_end_matches('='))
                    .map_err(|err| Failure::new(format!("eab.hmacEncoded: {err}")))?;
                Some(ExternalAccountKey::new(e.kid.clone(), &key))
            }
            None => None,
        };
        let (account, creds) = builder
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                ca.clone(),
                eab.as_ref(),
            )
            .await?;
        let credentials_json = serde_json::to_string(&creds)
            .map_err(|e| Failure::new(format!("account credentials: {e}")))?;
        self.propose(AcmeCommand::AccountRegistered {
            resolver: resolver.to_string(),
            ca_server: ca,
            email,
            credentials_json,
        })
        .await?;
        tracing::info!(resolver, "ACME: account registered");
        Ok((account, slot))
    }

    async fn new_order(
        &self,
        name: &str,
        resolver: &str,
        account: &Account,
        domains: &[String],
    ) -> Result<Order, Failure> {
        let ids: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
        let mut no = NewOrder::new(&ids);
        let a = self.resolver(resolver)?;
        if let Some(p) = &a.profile {
            no = no.profile(p);
        }
        let order = account.new_order(&no).await?;
        self.metrics
            .orders_created
            .get_or_create(&ResolverLabels {
                resolver: resolver.to_string(),
            })
            .inc();
        self.propose(AcmeCommand::OrderCreated {
            name: name.to_string(),
            url: order.url().to_string(),
        })
        .await?;
        Ok(order)
    }

    async fn drive(&self, name: &str, slot_out: &mut RetryAfter) -> Result<(), Failure> {
        let rec = self
            .cluster
            .state()
            .acme
            .orders
            .get(name)
            .cloned()
            .ok_or_else(|| Failure::new("the order is no longer in the store"))?;
        let a = self.resolver(&rec.resolver)?;
        let (account, slot) = self.account(&rec.resolver, &a).await?;
        *slot_out = slot;
        let mut order = match &rec.url {
            Some(url) => match account.order(url.clone()).await.map(|mut o| {
                let st = o.state().status;
                (o, st)
            }) {
                Ok((o, st)) if st != OrderStatus::Invalid => {
                    tracing::info!(cert = %name, status = ?st, "ACME: resumed order");
                    o
                }
                other => {
                    let why = match other {
                        Ok(_) => "invalid".to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::info!(cert = %name, reason = %why, "ACME: restarting order");
                    self.new_order(name, &rec.resolver, &account, &rec.domains)
                        .await?
                }
            },
            None => {
                self.new_order(name, &rec.resolver, &account, &rec.domains)
                    .await?
            }
        };
        let cert_timeout = go_duration(a.certificate_timeout.as_deref(), Duration::from_secs(60));
        let poll = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(cert_timeout.max(Duration::from_secs(30)));
        let mut status = order.state().status;
        if status == OrderStatus::Pending {
            let records = self.challenges(name, &a, &mut order).await?;
            let polled = order.poll_ready(&poll).await;
            // DNS-01 records are removed once the CA has decided, whatever it decided.
            if let (Some(d), false) = (&a.dns_challenge, records.is_empty()) {
                if let Err(e) = crate::dns01::cleanup(d, &records).await {
                    tracing::warn!(cert = %name, error = %e, "ACME: DNS-01 cleanup failed");
                }
            }
            status = polled?;
        }
        match status {
            OrderStatus::Invalid => return Err(Failure::new(order_error(&mut order).await)),
            OrderStatus::Pending => {
                return Err(Failure::new(
                    "the CA did not validate the challenges in time",
                ))
            }
            OrderStatus::Ready => {
                let (key, key_pem) = new_key(a.key_type.as_deref()).await?;
                self.propose(AcmeCommand::OrderKey {
                    name: name.to_string(),
                    key_pem,
                })
                .await?;
                let mut params = rcgen::CertificateParams::new(rec.domains.clone())
                    .map_err(|e| Failure::new(format!("CSR: {e}")))?;
                for e in &a.email_addresses {
                    let email = e
                        .clone()
                        .try_into()
                        .map_err(|err| Failure::new(format!("emailAddresses {e:?}: {err}")))?;
                    params
                        .subject_alt_names
                        .push(rcgen::SanType::Rfc822Name(email));
                }
                params.distinguished_name = rcgen::DistinguishedName::new();
                if !a.disable_common_name.unwrap_or(false) {
                    if let Some(main) = rec.domains.first() {
                        params
                            .distinguished_name
                            .push(rcgen::DnType::CommonName, main.clone());
                    }
                }
                let csr = params
                    .serialize_request(&key)
                    .map_err(|e| Failure::new(format!("CSR: {e}")))?;
                order.finalize_csr(csr.der().as_ref()).await?;
            }
            OrderStatus::Processing | OrderStatus::Valid => {}
        }
        let chain = order.poll_certificate(&poll).await?;
        let has_key = self
            .cluster
            .state()
            .acme
            .orders
            .get(name)
            .is_some_and(|o| o.key_pem.is_some());
        if !has_key {
            return Err(Failure {
                msg: "the order was finalized without a recorded key; ordering again".into(),
                rate_limited: false,
                immediate: true,
            });
        }
        let info = crate::certinfo::parse_leaf(&chain)
            .map_err(|e| Failure::new(format!("issued certificate: {e}")))?;
        self.propose(AcmeCommand::Issued {
            name: name.to_string(),
            cert_pem: chain,
            info: IssuedInfo {
                not_before: info.not_before,
                not_after: info.not_after,
                issuer: info.issuer,
                serial: info.serial,
            },
        })
        .await
    }

    /// Publishes the answers of every pending authorization to the proxies (through Raft), waits
    /// until the proxies hold them, then tells the CA to validate.
    async fn challenges(
        &self,
        name: &str,
        a: &AcmeResolver,
        order: &mut Order,
    ) -> Result<Vec<crate::dns01::TxtRecord>, Failure> {
        let ty = if a.http_challenge.is_some() {
            ChallengeType::Http01
        } else if a.tls_challenge.is_some() {
            ChallengeType::TlsAlpn01
        } else if let Some(d) = &a.dns_challenge {
            return self.dns_challenges(name, d, order).await;
        } else {
            return Err(Failure::new("the resolver has no supported challenge"));
        };
        let delay = match ty {
            ChallengeType::Http01 => a.http_challenge.as_ref().and_then(|c| c.delay.clone()),
            _ => a.tls_challenge.as_ref().and_then(|c| c.delay.clone()),
        };
        let mut http01 = BTreeMap::new();
        let mut alpn = BTreeMap::new();
        {
            let mut auths = order.authorizations();
            while let Some(auth) = auths.next().await {
                let mut auth = auth?;
                match auth.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(Failure::new(format!("authorization is {other:?}")));
                    }
                }
                let domain = match auth.identifier().identifier {
                    Identifier::Dns(d) => d.clone(),
                    other => return Err(Failure::new(format!("unsupported identifier {other:?}"))),
                };
                let ch = auth.challenge(ty.clone()).ok_or_else(|| {
                    Failure::new(format!("the CA offers no {ty:?} challenge for {domain}"))
                })?;
                let ka = ch.key_authorization();
                match ty {
                    ChallengeType::Http01 => {
                        http01.insert(ch.token.clone(), ka.as_str().to_string());
                    }
                    _ => {
                        alpn.insert(domain.clone(), alpn_cert(&domain, ka.digest().as_ref())?);
                    }
                }
            }
        }
        if http01.is_empty() && alpn.is_empty() {
            return Ok(Vec::new());
        }
        self.propose(AcmeCommand::Challenges {
            name: name.to_string(),
            http01,
            tls_alpn01: alpn,
        })
        .await?;
        let version = self.cluster.state().config_version;
        tracing::info!(cert = %name, version, "ACME: challenge answers published to the proxies");
        let deadline = Instant::now() + PROXY_WAIT;
        loop {
            match self.cluster.proxies_have(version).await {
                Ok(true) => break,
                Ok(false) | Err(_) if Instant::now() >= deadline => {
                    tracing::warn!(cert = %name, version, "ACME: not every proxy confirmed the challenge answers in time; proceeding");
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let delay = go_duration(delay.as_deref(), Duration::ZERO);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut auths = order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth = auth?;
            if auth.status != AuthorizationStatus::Pending {
                continue;
            }
            if let Some(mut ch) = auth.challenge(ty.clone()) {
                ch.set_ready().await?;
            }
        }
        Ok(Vec::new())
    }

    /// DNS-01: publishes a TXT record per pending authorization through the resolver's
    /// provider, waits `delayBeforeChecks` and for the records to propagate (unless disabled),
    /// then tells the CA. A leader that takes over an order in this phase publishes the records
    /// again (providers add, so a repeat is harmless) and goes on with the same order. Returns
    /// the records, which the caller removes once the CA decided.
    async fn dns_challenges(
        &self,
        name: &str,
        d: &switchyard_config::DnsChallenge,
        order: &mut Order,
    ) -> Result<Vec<crate::dns01::TxtRecord>, Failure> {
        let mut records = Vec::new();
        {
            let mut auths = order.authorizations();
            while let Some(auth) = auths.next().await {
                let mut auth = auth?;
                match auth.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => return Err(Failure::new(format!("authorization is {other:?}"))),
                }
                let domain = match auth.identifier().identifier {
                    Identifier::Dns(d) => d.clone(),
                    other => return Err(Failure::new(format!("unsupported identifier {other:?}"))),
                };
                let ch = auth.challenge(ChallengeType::Dns01).ok_or_else(|| {
                    Failure::new(format!("the CA offers no DNS-01 challenge for {domain}"))
                })?;
                let ka = ch.key_authorization();
                records.push(crate::dns01::TxtRecord::new(
                    &domain,
                    &ch.token,
                    ka.as_str(),
                    &ka.dns_value(),
                ));
            }
        }
        if records.is_empty() {
            return Ok(records);
        }
        let fqdns: Vec<&str> = records.iter().map(|r| r.fqdn.as_str()).collect();
        tracing::info!(cert = %name, provider = %d.provider, records = ?fqdns, "ACME: publishing DNS-01 records");
        crate::dns01::present(d, &records)
            .await
            .map_err(|e| Failure::new(format!("DNS provider {}: {e}", d.provider)))?;
        let delay = go_duration(d.delay_before_checks(), Duration::ZERO);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !d.checks_disabled() {
            if let Err(e) = crate::dns01::propagation::wait(d, &records).await {
                let _ = crate::dns01::cleanup(d, &records).await;
                return Err(Failure::new(e));
            }
            tracing::info!(cert = %name, "ACME: DNS-01 records visible");
        }
        let mut auths = order.authorizations();
        while let Some(auth) = auths.next().await {
            let mut auth = auth?;
            if auth.status != AuthorizationStatus::Pending {
                continue;
            }
            if let Some(mut ch) = auth.challenge(ChallengeType::Dns01) {
                ch.set_ready().await?;
            }
        }
        Ok(records)
    }
}

/// The error of an invalid order, from the order or its failed challenges.
async fn order_error(order: &mut Order) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &order.state().error {
        parts.push(p.to_string());
    }
    let mut auths = order.authorizations();
    while let Some(Ok(auth)) = auths.next().await {
        for c in &auth.challenges {
            if let Some(p) = &c.error {
                parts.push(format!("{}: {p}", auth.identifier()));
            }
        }
    }
    if parts.is_empty() {
        "the order became invalid".to_string()
    } else {
        parts.join("; ")
    }
}

/// A certificate key of `key_type` (EC256 when unset) and its PEM.
///
/// ECDSA keys come from ring (through rcgen). ring cannot generate RSA keys, so RSA keys are
/// generated by the RustCrypto `rsa` crate and loaded into ring for signing (the CSR here, TLS
/// handshakes on the proxies): the workspace keeps one rustls provider (ring). RSA4096/8192
/// generation takes seconds, hence [`new_key`] runs this on a blocking thread.
fn new_key_blocking(key_type: Option<&str>) -> Result<(rcgen::KeyPair, String), Failure> {
    let key_err = |e: &dyn std::fmt::Display| Failure::new(format!("key: {e}"));
    let kt = key_type.unwrap_or("EC256");
    let alg = match kt {
        "EC256" => &rcgen::PKCS_ECDSA_P256_SHA256,
        "EC384" => &rcgen::PKCS_ECDSA_P384_SHA384,
        "RSA2048" | "RSA4096" | "RSA8192" => {
            use rsa::pkcs8::EncodePrivateKey;
            let bits = match kt {
                "RSA2048" => 2048,
                "RSA4096" => 4096,
                _ => 8192,
            };
            let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| key_err(&e))?;
            let der = rsa.to_pkcs8_der().map_err(|e| key_err(&e))?;
            let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
            let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| key_err(&e))?;
            let pem = key.serialize_pem();
            return Ok((key, pem));
        }
        other => {
            return Err(Failure::new(format!(
                "keyType {other} is not supported by this version of Switchyard"
            )))
        }
    };
    let key = rcgen::KeyPair::generate_for(alg).map_err(|e| key_err(&e))?;
    let pem = key.serialize_pem();
    Ok((key, pem))
}

/// [`new_key_blocking`] off the async runtime.
async fn new_key(key_type: Option<&str>) -> Result<(rcgen::KeyPair, String), Failure> {
    let kt = key_type.map(str::to_string);
    tokio::task::spawn_blocking(move || new_key_blocking(kt.as_deref()))
        .await
        .map_err(|e| Failure::new(format!("key generation: {e}")))?
}

/// The TLS-ALPN-01 challenge certificate for `domain` (RFC 8737): self-signed, the domain as its
/// only SAN, the critical acmeIdentifier extension holding the SHA-256 of the key authorization.
fn alpn_cert(domain: &str, digest: &[u8]) -> Result<KeyPair, Failure> {
    let key = rcgen::KeyPair::generate().map_err(|e| Failure::new(format!("key: {e}")))?;
    let mut p = rcgen::CertificateParams::new(vec![domain.to_string()])
        .map_err(|e| Failure::new(format!("challenge certificate: {e}")))?;
    p.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = p
        .self_signed(&key)
        .map_err(|e| Failure::new(format!("challenge certificate: {e}")))?;
    Ok(KeyPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_cert_has_the_identifier() {
        let pair = alpn_cert("a.test", &[7u8; 32]).expect("cert");
        let info = crate::certinfo::parse_leaf(&pair.cert_pem).expect("parses");
        assert_eq!(info.names, vec!["a.test"]);
        use rustls::pki_types::pem::PemObject;
        use x509_parser::prelude::FromDer;
        let der = rustls::pki_types::CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .expect("der");
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(&der).expect("x509");
        let ext = c
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
    }

    #[test]
    fn rate_limits_are_recognized() {
        let p: instant_acme::Problem = serde_json::from_value(serde_json::json!({
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": "too many certificates",
            "status": 429
        }))
        .expect("problem");
        let f = Failure::from(instant_acme::Error::Api(p));
        assert!(f.rate_limited);
        assert!(f.msg.contains("too many certificates"), "{}", f.msg);
        let p: instant_acme::Problem = serde_json::from_value(serde_json::json!({
            "type": "urn:ietf:params:acme:error:unauthorized"
        }))
        .expect("problem");
        assert!(!Failure::from(instant_acme::Error::Api(p)).rate_limited);
    }

    #[test]
    fn key_types() {
        use rustls::pki_types::pem::PemObject;
        for (kt, scheme) in [
            (None, rustls::SignatureScheme::ECDSA_NISTP256_SHA256),
            (
                Some("EC384"),
                rustls::SignatureScheme::ECDSA_NISTP384_SHA384,
            ),
            (Some("RSA2048"), rustls::SignatureScheme::RSA_PSS_SHA256),
        ] {
            let (key, pem) = new_key_blocking(kt).expect("key");
            // The PEM loads into the workspace's rustls provider and signs with the scheme.
            let der =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("pem");
            let signer = rustls::crypto::ring::default_provider()
                .key_provider
                .load_private_key(der)
                .expect("ring loads it");
            assert!(signer.choose_scheme(&[scheme]).is_some(), "{kt:?}");
            // And it signs a CSR.
            let params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).expect("p");
            params.serialize_request(&key).expect("csr");
        }
        assert!(new_key_blocking(Some("RSA1024")).is_err());
    }
}
