//! The replicated state and the pure function that applies a command to it.
//!
//! Every node runs [`ClusterState::apply`] on the same log and reaches the same state: validation runs
//! here too (not only at the API), so two concurrent writes that are each valid alone but invalid
//! together cannot both land. The API runs [`ClusterState::preview`] first to refuse bad input
//! without spending a log entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_config::{diff, validate, ConfigErrors, DynamicConfig, Kind, Map, ResourceKind};

use crate::acme::AcmeState;
use crate::rollout::{Place, Rollout, RolloutCommand, Status as RolloutStatus};
use crate::security::SecurityState;
use crate::types::{NodeId, NodeInfo, Rejection, Request, Response};

/// Checks a config exactly as a proxy would load it: validation, then the proxy's own route
/// compiler, then its TLS compiler (certificates, keys, TLS options, backend TLS). The control
/// plane commits nothing this refuses.
pub fn compile_check(cfg: &DynamicConfig) -> Result<(), ConfigErrors> {
    validate(cfg)?;
    switchyard_router::compile(cfg, None)?;
    switchyard_tls::compile(cfg, None).map(|_| ())
}

/// [`compile_check`]`(next)` in time proportional to a change: `base` is a config that passes
/// [`compile_check`] (the committed one) and `changed` names every resource that differs in
/// `next` (a superset is fine). Validation runs on the changed resources and what references
/// them ([`switchyard_config::validate_change`]: the same verdict and errors as `validate`);
/// the route compiler refuses only rules `validate` refuses with the same text, so it is not
/// run again; the TLS compiler runs when a resource it reads changed.
pub fn compile_check_change(
    base: &DynamicConfig,
    next: &DynamicConfig,
    changed: &[(ResourceKind, &str)],
) -> Result<(), ConfigErrors> {
    switchyard_config::validate_change(base, next, changed)?;
    let tls = changed.iter().any(|(k, _)| k.touches_tls());
    if tls {
        switchyard_tls::compile(next, None)?;
    }
    Ok(())
}

/// Every resource `doc` names, by kind (what merging `doc` into a config can change).
fn named_keys(doc: &DynamicConfig) -> Vec<(ResourceKind, &str)> {
    use ResourceKind as K;
    fn keys<'a, V: Clone>(k: K, m: &'a Map<V>) -> impl Iterator<Item = (K, &'a str)> + 'a {
        m.keys().map(move |n| (k, n.as_str()))
    }
    keys(K::Router, &doc.http.routers)
        .chain(keys(K::Service, &doc.http.services))
        .chain(keys(K::Middleware, &doc.http.middlewares))
        .chain(keys(K::ServersTransport, &doc.http.servers_transports))
        .chain(keys(K::TlsOption, &doc.tls.options))
        .chain(keys(K::TlsStore, &doc.tls.stores))
        .chain(
            doc.tls
                .certificates
                .iter()
                .map(|c| (K::TlsCertificate, c.cert_file.as_str())),
        )
        .chain(keys(K::CertResolver, &doc.certificates_resolvers))
        .chain(keys(K::TcpRouter, &doc.tcp.routers))
        .chain(keys(K::TcpService, &doc.tcp.services))
        .chain(keys(K::TcpMiddleware, &doc.tcp.middlewares))
        .chain(keys(K::TcpServersTransport, &doc.tcp.servers_transports))
        .collect()
}

/// The kind of a resource `switchyard delete` names.
fn resource_kind(kind: Kind) -> ResourceKind {
    match kind {
        Kind::Router => ResourceKind::Router,
        Kind::Service => ResourceKind::Service,
        Kind::Middleware => ResourceKind::Middleware,
        Kind::TcpRouter => ResourceKind::TcpRouter,
        Kind::TcpService => ResourceKind::TcpService,
        Kind::TcpMiddleware => ResourceKind::TcpMiddleware,
        Kind::TcpServersTransport => ResourceKind::TcpServersTransport,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The Traefik dynamic configuration every proxy serves. Shared, never mutated in place: a
    /// change builds a new config, so readers holding an older state keep a consistent view and
    /// copying the state is cheap.
    pub config: Arc<DynamicConfig>,
    /// Raft log index of the entry that last changed `config` (0: never changed).
    pub config_version: u64,
    /// What each node says about itself (API address, region, zone).
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// ACME accounts, orders and certificate status.
    #[serde(default)]
    pub acme: AcmeState,
    /// Cluster CA and API tokens.
    #[serde(default)]
    pub security: SecurityState,
    /// The outcomes of the latest admin writes by id ([`Request::Once`]).
    #[serde(default)]
    pub recent_writes: RecentWrites,
    /// The current (or latest) progressive rollout ([`crate::rollout`]).
    #[serde(default)]
    pub rollout: Option<Rollout>,
    /// The trace of the write that made `config_version` (its `traceparent`; in a batch, the
    /// last traced command that changed something), pushed with that version to the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_trace: Option<String>,
}

/// The outcomes of the last [`RecentWrites::CAPACITY`] writes applied under an id, oldest first.
/// Part of the replicated state (and of snapshots), so every node answers a retried write alike.
/// The window is a count, not a time, so applying stays deterministic: 10,000 writes cover the
/// write timeout's retries at any write rate the store sustains today. Persistent collections
/// (`imbl`): the state is copied when a reader still holds it as a write applies, and copying
/// them is O(1), not O(window).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<(String, Response)>", into = "Vec<(String, Response)>")]
pub struct RecentWrites {
    order: imbl::Vector<String>,
    index: imbl::HashMap<String, Response>,
}

impl RecentWrites {
    /// How many outcomes are kept.
    pub const CAPACITY: usize = 10_000;
    /// A stored outcome keeps at most this many changes (the version is what a retry needs; a
    /// huge change list is not worth keeping in every snapshot).
    const MAX_CHANGES: usize = 1_000;

    /// The outcome of the write applied under `id`, if it is still remembered.
    pub fn get(&self, id: &str) -> Option<&Response> {
        self.index.get(id)
    }

    fn insert(&mut self, id: String, resp: &Response) {
        let mut resp = resp.clone();
        if let Response::Applied { changes, .. } = &mut resp {
            changes.truncate(Self::MAX_CHANGES);
        }
        if self.order.len() == Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.index.remove(&old);
            }
        }
        if self.index.insert(id.clone(), resp).is_some() {
            // The same id again (never from `apply`, which answers it from the record; possible
            // in a hand-made snapshot): it moves to the end, as a new entry would.
            if let Some(at) = self.order.index_of(&id) {
                self.order.remove(at);
            }
        }
        self.order.push_back(id);
    }

    /// How many outcomes are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl From<Vec<(String, Response)>> for RecentWrites {
    fn from(v: Vec<(String, Response)>) -> Self {
        let mut r = RecentWrites::default();
        for (id, resp) in v {
            r.insert(id, &resp);
        }
        r
    }
}

impl From<RecentWrites> for Vec<(String, Response)> {
    fn from(r: RecentWrites) -> Self {
        r.order
            .into_iter()
            .filter_map(|id| {
                let resp = r.index.get(&id)?.clone();
                Some((id, resp))
            })
            .collect()
    }
}

impl ClusterState {
    /// The config changed at log `index` (a new version: the trace of the previous one goes).
    fn moved_to(&mut self, index: u64) {
        if self.config_version != index {
            self.config_version = index;
            self.config_trace = None;
        }
    }

    /// Applies the command committed at log `index`.
    pub fn apply(&mut self, index: u64, req: &Request) -> Response {
        self.apply_known(index, req, None)
    }

    /// [`apply`](Self::apply) of an entry whose verdict may be known: `Some(accepted)` when this
    /// state machine applied the very same entry before (a replay after a restart; applying is
    /// deterministic, so the verdict is the same and the validation need not run again).
    pub fn apply_known(&mut self, index: u64, req: &Request, known: Option<bool>) -> Response {
        if let Request::Once { id, request, trace } = req {
            if let Some(first) = self.recent_writes.get(id) {
                return first.clone();
            }
            let resp = self.apply_known(index, request, known);
            if let (Some(t), Response::Applied { changes, .. }) = (trace, &resp) {
                if !changes.is_empty() {
                    self.config_trace = Some(t.clone());
                }
            }
            self.recent_writes.insert(id.clone(), &resp);
            return resp;
        }
        let config_cmd = matches!(req, Request::Apply { .. } | Request::Delete { .. });
        if config_cmd {
            if let Some(busy) = self.active_rollout().map(Rollout::busy) {
                return Response::Rejected(Rejection::Conflict(busy));
            }
        }
        if config_cmd && known == Some(false) {
            return Response::Rejected(Rejection::Invalid(format!(
                "log entry {index} was refused when first applied"
            )));
        }
        let known_good = known == Some(true);
        match req {
            // The common case, and all of a replay after a restart: an upsert validated against
            // this very config. Only the resources the document names can change, so the work is
            // proportional to the document, not to the config (no whole-config copy or diff per
            // entry; the config is copied at most once per applied batch, when readers share it).
            Request::Apply {
                document,
                prune: false,
                validated_at,
            } if known_good || *validated_at == Some(self.config_version) => {
                let changes = self.merge_in_place(document);
                if !changes.is_empty() {
                    self.moved_to(index);
                }
                Response::Applied {
                    version: self.config_version,
                    changes,
                }
            }
            Request::Apply { validated_at, .. } | Request::Delete { validated_at, .. } => {
                match self.next_config(
                    req,
                    known_good || *validated_at == Some(self.config_version),
                ) {
                    Ok(next) => {
                        let changes = diff(&self.config, &next);
                        if !changes.is_empty() {
                            self.config = Arc::new(next);
                            self.moved_to(index);
                        }
                        Response::Applied {
                            version: self.config_version,
                            changes,
                        }
                    }
                    Err(rejection) => Response::Rejected(rejection),
                }
            }
            Request::RegisterNode { id, info } => {
                self.nodes.insert(*id, info.clone());
                Response::Done
            }
            Request::ForgetNode { id } => {
                self.nodes.remove(id);
                Response::Done
            }
            Request::Acme { cmd, at } => {
                let mut next = DynamicConfig::clone(&self.config);
                if self.acme.apply(cmd, *at, &mut next) {
                    let changes = diff(&self.config, &next);
                    if !changes.is_empty() {
                        self.config = Arc::new(next);
                        self.moved_to(index);
                    }
                }
                Response::Done
            }
            Request::Security { cmd, at } => self.security.apply(cmd, *at),
            Request::Batch { cmds, validated_at } => {
                Response::Batch(self.apply_batch(index, cmds, *validated_at, |_| None))
            }
            Request::Rollout { cmd, at } => self.apply_rollout(index, cmd, *at, known),
            Request::Once { .. } => unreachable!("handled above"),
        }
    }

    /// The rollout in progress (running or paused), if any.
    pub fn active_rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref().filter(|r| r.is_active())
    }

    /// The version (and config) a proxy at `place` is to serve: during a rollout, the previous
    /// version unless a stage reached so far selects it; otherwise the current one.
    pub fn config_for(&self, place: Place<'_>) -> (u64, &Arc<DynamicConfig>) {
        if let Some(r) = self.active_rollout() {
            if let (false, Some(prev)) = (r.reaches(place), &r.previous) {
                return (r.previous_version, prev);
            }
        }
        (self.config_version, &self.config)
    }

    /// Applies a rollout step (see [`crate::rollout`]); `known` as for
    /// [`apply_known`](Self::apply_known).
    fn apply_rollout(
        &mut self,
        index: u64,
        cmd: &RolloutCommand,
        at: u64,
        known: Option<bool>,
    ) -> Response {
        let conflict = |m: String| Response::Rejected(Rejection::Conflict(m));
        let target_of = |cmd: &RolloutCommand| match cmd {
            RolloutCommand::Start { .. } => 0,
            RolloutCommand::Promote { target, .. }
            | RolloutCommand::RollBack { target, .. }
            | RolloutCommand::Pause { target }
            | RolloutCommand::Resume { target }
            | RolloutCommand::Abort { target } => *target,
        };
        if let RolloutCommand::Start {
            document,
            prune,
            plan,
        } = cmd
        {
            if let Some(r) = self.active_rollout() {
                return conflict(r.busy());
            }
            if known == Some(false) {
                return Response::Rejected(Rejection::Invalid(format!(
                    "log entry {index} was refused when first applied"
                )));
            }
            if let Err(e) = plan.check() {
                return Response::Rejected(Rejection::Invalid(e));
            }
            let apply = Request::Apply {
                document: DynamicConfig::clone(document),
                prune: *prune,
                validated_at: None,
            };
            let next = match self.next_config(&apply, known == Some(true)) {
                Ok(next) => next,
                Err(r) => return Response::Rejected(r),
            };
            let changes = diff(&self.config, &next);
            if changes.is_empty() {
                // Nothing to roll out.
                return Response::Applied {
                    version: self.config_version,
                    changes,
                };
            }
            let previous = std::mem::replace(&mut self.config, Arc::new(next));
            self.rollout = Some(Rollout {
                plan: plan.clone(),
                target_version: index,
                previous_version: self.config_version,
                previous: Some(previous),
                stage: 0,
                started_at_ms: at,
                stage_started_at_ms: at,
                status: RolloutStatus::Running,
                reason: String::new(),
                ended_at_ms: 0,
                rollback_version: 0,
                notes: Vec::new(),
            });
            self.config_version = index;
            return Response::Applied {
                version: index,
                changes,
            };
        }
        let target = target_of(cmd);
        let Some(r) = self
            .rollout
            .as_mut()
            .filter(|r| r.is_active() && r.target_version == target)
        else {
            return conflict(format!(
                "no rollout of config version {target} is in progress"
            ));
        };
        let mut back_to_previous = None;
        match cmd {
            RolloutCommand::Start { .. } => unreachable!("handled above"),
            RolloutCommand::Promote { stage, note, .. } => {
                if r.status != RolloutStatus::Running || r.stage != *stage {
                    return conflict(format!("the rollout is not running stage {}", stage + 1));
                }
                r.notes.push(note.clone());
                if r.stage + 1 < r.plan.stages.len() {
                    r.stage += 1;
                    r.stage_started_at_ms = at;
                } else {
                    r.status = RolloutStatus::Completed;
                    r.previous = None;
                    r.ended_at_ms = at;
                    r.reason = "every stage passed".into();
                }
            }
            RolloutCommand::RollBack { stage, reason, .. } => {
                if r.status != RolloutStatus::Running || r.stage != *stage {
                    return conflict(format!("the rollout is not running stage {}", stage + 1));
                }
                r.notes.push(reason.clone());
                back_to_previous = Some((RolloutStatus::RolledBack, reason.clone()));
            }
            RolloutCommand::Abort { .. } => {
                back_to_previous = Some((
                    RolloutStatus::Aborted,
                    "aborted by `switchyard rollout abort`".to_string(),
                ));
            }
            RolloutCommand::Pause { .. } => {
                if r.status != RolloutStatus::Running {
                    return conflict("the rollout is not running".into());
                }
                r.status = RolloutStatus::Paused;
                r.reason = "paused by `switchyard rollout pause`".into();
            }
            RolloutCommand::Resume { .. } => {
                if r.status != RolloutStatus::Paused {
                    return conflict("the rollout is not paused".into());
                }
                r.status = RolloutStatus::Running;
                r.reason.clear();
                r.stage_started_at_ms = at;
            }
        }
        if let Some((status, reason)) = back_to_previous {
            // The previous config comes back as a new version: proxies only move forward. The
            // control plane's own TLS material (ACME certificates and challenges, ticket keys)
            // is not part of the change: it stays as it is now.
            let mut previous = r.previous.take().unwrap_or_else(|| self.config.clone());
            if previous.managed != self.config.managed {
                Arc::make_mut(&mut previous).managed = self.config.managed.clone();
            }
            r.status = status;
            r.reason = reason;
            r.ended_at_ms = at;
            r.rollback_version = index;
            self.config = previous;
            self.config_version = index;
        }
        Response::Done
    }

    /// Applies the commands of a [`Request::Batch`] committed at `index`, in order, each as if it
    /// were an entry of its own, except that all of them skip validation when the batch was
    /// screened against this very config version. `known(j)`: the verdict recorded for command `j`
    /// when this state machine applied the entry before (see [`apply_known`](Self::apply_known)).
    /// Anything but a config command inside a batch is refused (the leader never batches others).
    pub fn apply_batch(
        &mut self,
        index: u64,
        cmds: &[Request],
        validated_at: Option<u64>,
        known: impl Fn(usize) -> Option<bool>,
    ) -> Vec<Response> {
        let trusted = validated_at == Some(self.config_version);
        cmds.iter()
            .enumerate()
            .map(|(j, cmd)| match config_command(cmd) {
                Some(_) => {
                    let known = known(j).or(trusted.then_some(true));
                    self.apply_known(index, cmd, known)
                }
                None => Response::Rejected(Rejection::Invalid(format!(
                    "log entry {index}: command {j} of a batch is not a config command"
                ))),
            })
            .collect()
    }

    /// The leader's check of config commands proposed together: which of them to refuse
    /// (`Some`, by position) so that the others, applied in order to this state, leave a config
    /// that compiles. Stamped with this state's version ([`Request::validated_at`]), the accepted
    /// ones then apply on every node without validating again.
    ///
    /// The common case costs one compile, of the final config: when every command applies and the
    /// result compiles, all are accepted, as one transaction (a command that would only be valid
    /// together with a later one of the same batch is accepted with it; no reader, proxy or
    /// follower ever sees the config between two commands of a batch). Otherwise each command is
    /// validated in order against the result of the accepted ones before it, as separate entries
    /// would be, and the refused ones get the same error as [`preview`](Self::preview) gives.
    pub fn screen(&self, cmds: &[Request]) -> Vec<Option<Rejection>> {
        if let Some(busy) = self.active_rollout().map(Rollout::busy) {
            return vec![Some(Rejection::Conflict(busy)); cmds.len()];
        }
        let base = || ClusterState {
            config: self.config.clone(),
            config_version: self.config_version,
            ..ClusterState::default()
        };
        // A write already applied under its id is answered from the record, whatever the config.
        let repeated = |cmd: &Request| matches!(cmd, Request::Once { id, .. } if self.recent_writes.get(id).is_some());
        let mut spec = base();
        let mut changed: Vec<switchyard_config::Change> = Vec::new();
        let applies = cmds.iter().all(|cmd| {
            repeated(cmd)
                || (config_command(cmd).is_some()
                    && match spec.apply_known(0, cmd, Some(true)) {
                        Response::Rejected(_) => false,
                        Response::Applied { changes, .. } => {
                            changed.extend(changes);
                            true
                        }
                        _ => true,
                    })
        });
        let keys: Vec<(ResourceKind, &str)> =
            changed.iter().map(|c| (c.kind, c.name.as_str())).collect();
        if applies && compile_check_change(&self.config, &spec.config, &keys).is_ok() {
            return vec![None; cmds.len()];
        }
        let mut spec = base();
        cmds.iter()
            .enumerate()
            .map(|(j, cmd)| {
                if repeated(cmd) {
                    return None;
                }
                let Some(inner) = config_command(cmd) else {
                    return Some(Rejection::Invalid(format!(
                        "command {j} of a batch is not a config command"
                    )));
                };
                match spec.next_config(inner, false) {
                    Ok(next) => {
                        spec.config = Arc::new(next);
                        None
                    }
                    Err(r) => Some(r),
                }
            })
            .collect()
    }

    /// `self.config.merged(doc)` in place; returns `diff(old, new)`. Both are computed on the
    /// resources `doc` names (plus the TLS certificate list, which merging appends to): every
    /// other resource is untouched by a merge, so the result is the same as the whole-config
    /// computation (see the `in_place_merge_equals_whole_config_merge` test).
    fn merge_in_place(&mut self, doc: &DynamicConfig) -> Vec<switchyard_config::Change> {
        let old = named_in(&self.config, doc);
        let new = old.merged(doc);
        let changes = diff(&old, &new);
        if changes.is_empty() {
            return changes;
        }
        let cfg = Arc::make_mut(&mut self.config);
        cfg.http.routers.extend(new.http.routers);
        cfg.http.services.extend(new.http.services);
        cfg.http.middlewares.extend(new.http.middlewares);
        cfg.http
            .servers_transports
            .extend(new.http.servers_transports);
        cfg.tls.options.extend(new.tls.options);
        cfg.tls.stores.extend(new.tls.stores);
        cfg.tcp.routers.extend(new.tcp.routers);
        cfg.tcp.services.extend(new.tcp.services);
        cfg.tcp.middlewares.extend(new.tcp.middlewares);
        cfg.tcp
            .servers_transports
            .extend(new.tcp.servers_transports);
        cfg.tls.certificates = new.tls.certificates;
        cfg.certificates_resolvers
            .extend(new.certificates_resolvers);
        changes
    }

    /// What [`apply`](Self::apply) would answer, without changing anything. A dry run reports the
    /// current version with the changes.
    pub fn preview(&self, req: &Request) -> Response {
        match req {
            Request::Once { id, request, .. } => match self.recent_writes.get(id) {
                Some(first) => first.clone(),
                None => self.preview(request),
            },
            Request::Apply { .. } | Request::Delete { .. } if self.active_rollout().is_some() => {
                Response::Rejected(Rejection::Conflict(
                    self.active_rollout().map(Rollout::busy).unwrap_or_default(),
                ))
            }
            Request::Rollout {
                cmd:
                    RolloutCommand::Start {
                        document,
                        prune,
                        plan,
                    },
                ..
            } => {
                if let Some(r) = self.active_rollout() {
                    return Response::Rejected(Rejection::Conflict(r.busy()));
                }
                if let Err(e) = plan.check() {
                    return Response::Rejected(Rejection::Invalid(e));
                }
                self.preview(&Request::Apply {
                    document: DynamicConfig::clone(document),
                    prune: *prune,
                    validated_at: None,
                })
            }
            Request::Apply { .. } | Request::Delete { .. } => match self.next_config(req, false) {
                Ok(next) => Response::Applied {
                    version: self.config_version,
                    changes: match req {
                        // Only what the document names can change: diffed on that part (see
                        // `merge_in_place`), not on the whole config.
                        Request::Apply {
                            document,
                            prune: false,
                            ..
                        } => {
                            let old = named_in(&self.config, document);
                            diff(&old, &old.merged(document))
                        }
                        _ => diff(&self.config, &next),
                    },
                },
                Err(rejection) => Response::Rejected(rejection),
            },
            _ => Response::Done,
        }
    }

    /// The config a config command would produce, validated unless `trusted` (validated against
    /// this very config already; see [`Request::validated_at`]).
    fn next_config(&self, req: &Request, trusted: bool) -> Result<DynamicConfig, Rejection> {
        let next = match req {
            Request::Apply {
                document,
                prune: false,
                ..
            } => {
                let next = self.config.merged(document);
                if !trusted {
                    compile_check_change(&self.config, &next, &named_keys(document))
                        .map_err(|e| Rejection::Invalid(e.to_string()))?;
                }
                return Ok(next);
            }
            Request::Apply { document, .. } => self.config.replaced_by(document),
            Request::Delete { kind, name, .. } => {
                let mut next = DynamicConfig::clone(&self.config);
                next.remove(*kind, name)
                    .map_err(|e| Rejection::NotFound(e.to_string()))?;
                if trusted {
                    return Ok(next);
                }
                let key = [(resource_kind(*kind), name.as_str())];
                if let Err(errors) = compile_check_change(&self.config, &next, &key) {
                    return Err(Rejection::Invalid(format!(
                        "cannot delete {} \"{name}\": it is still referenced: {errors}",
                        kind.as_str()
                    )));
                }
                return Ok(next);
            }
            _ => return Ok(DynamicConfig::clone(&self.config)),
        };
        if !trusted {
            compile_check(&next).map_err(|e| Rejection::Invalid(e.to_string()))?;
        }
        Ok(next)
    }
}

/// The config command `req` is or wraps ([`Request::Once`]), if any.
fn config_command(req: &Request) -> Option<&Request> {
    match req {
        Request::Apply { .. } | Request::Delete { .. } => Some(req),
        Request::Once { request, .. } => config_command(request),
        _ => None,
    }
}

/// The part of `cfg` a merge of `doc` reads or changes: the resources `doc` names, by kind, and
/// every TLS certificate.
fn named_in(cfg: &DynamicConfig, doc: &DynamicConfig) -> DynamicConfig {
    fn pick<V: Clone, W: Clone>(from: &Map<V>, names: &Map<W>, into: &mut Map<V>) {
        for name in names.keys() {
            if let Some(v) = from.get(name) {
                into.insert(name.clone(), v.clone());
            }
        }
    }
    let mut out = DynamicConfig::default();
    pick(&cfg.http.routers, &doc.http.routers, &mut out.http.routers);
    pick(
        &cfg.http.services,
        &doc.http.services,
        &mut out.http.services,
    );
    pick(
        &cfg.http.middlewares,
        &doc.http.middlewares,
        &mut out.http.middlewares,
    );
    pick(
        &cfg.http.servers_transports,
        &doc.http.servers_transports,
        &mut out.http.servers_transports,
    );
    pick(&cfg.tls.options, &doc.tls.options, &mut out.tls.options);
    pick(&cfg.tls.stores, &doc.tls.stores, &mut out.tls.stores);
    pick(&cfg.tcp.routers, &doc.tcp.routers, &mut out.tcp.routers);
    pick(&cfg.tcp.services, &doc.tcp.services, &mut out.tcp.services);
    pick(
        &cfg.tcp.middlewares,
        &doc.tcp.middlewares,
        &mut out.tcp.middlewares,
    );
    pick(
        &cfg.tcp.servers_transports,
        &doc.tcp.servers_transports,
        &mut out.tcp.servers_transports,
    );
    pick(
        &cfg.certificates_resolvers,
        &doc.certificates_resolvers,
        &mut out.certificates_resolvers,
    );
    out.tls.certificates = cfg.tls.certificates.clone();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_config::{parse_document, Kind};

    fn doc(text: &str) -> DynamicConfig {
        parse_document(text).expect("valid test document")
    }

    const WEB: &str = r#"
http:
  routers:
    web: { rule: "Host(`a.example`)", service: web }
  services:
    web: { loadBalancer: { servers: [ { url: "http://127.0.0.1:8080" } ] } }
"#;

    #[test]
    fn a_write_retried_under_its_id_is_applied_once() {
        let mut st = ClusterState::default();
        let apply = Request::Apply {
            document: doc(WEB),
            prune: false,
            validated_at: None,
        }
        .once("w1".into());
        let first = st.apply(3, &apply);
        assert!(matches!(first, Response::Applied { version: 3, .. }));
        // The retry lands at a later index: same answer, no new version.
        assert_eq!(st.apply(5, &apply), first);
        assert_eq!(st.config_version, 3);
        assert_eq!(st.preview(&apply), first);

        // A delete retried after its first attempt committed answers the delete, not NotFound.
        let del = Request::Delete {
            kind: Kind::Router,
            name: "web".into(),
            validated_at: None,
        }
        .once("w2".into());
        let first = st.apply(6, &del);
        assert!(
            matches!(first, Response::Applied { version: 6, .. }),
            "{first:?}"
        );
        assert_eq!(st.apply(8, &del), first);
        // Without an id (or under a new one) the same delete is a new request.
        let again = st.apply(9, &del.clone().once("w3".into()));
        assert!(
            matches!(again, Response::Rejected(Rejection::NotFound(_))),
            "{again:?}"
        );
        // Rejections are remembered too: the retry gets the same refusal.
        assert_eq!(st.apply(10, &del.once("w3".into())), again);
    }

    /// A write is checked against the committed config with `compile_check_change`: the
    /// verdict and the message are those of the whole-config `compile_check` of the result,
    /// through `preview`, the leader's `screen` and `apply`.
    #[test]
    fn a_write_is_refused_as_the_whole_config_check_refuses_it() {
        let base = doc(
            "http:\n  routers:\n    web: {rule: \"Host(`a.com`)\", service: s, middlewares: [m]}\n  middlewares:\n    m: {addPrefix: {prefix: /p}}\n  services:\n    s: {loadBalancer: {servers: [{url: \"http://127.0.0.1:1\"}], serversTransport: t}}\n  serversTransports:\n    t: {serverName: x.internal}\n",
        );
        let st = ClusterState {
            config: Arc::new(base.clone()),
            config_version: 1,
            ..ClusterState::default()
        };
        let writes = [
            "http:\n  routers:\n    other: {rule: \"Host(`b.com`)\", service: nope}\n",
            "http:\n  routers:\n    web: {rule: \"Host(`\", service: s}\n",
            "http:\n  routers:\n    other: {rule: \"Host(`b.com`)\", service: s, middlewares: [m]}\n",
            "http:\n  services:\n    s2: {loadBalancer: {servers: []}}\n",
            "http:\n  serversTransports:\n    t: {serverName: \"\"}\n",
            "http:\n  serversTransports:\n    t: {serverName: y.internal}\n",
            "http:\n  middlewares:\n    m: {chain: {middlewares: [m]}}\n",
            "tls:\n  options:\n    o: {minVersion: VersionTLS9}\n",
            "tls:\n  certificates:\n    - {certFile: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\", keyFile: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}\n",
        ];
        let mut refused = 0;
        for w in writes {
            let document = doc(w);
            let whole = compile_check(&base.merged(&document));
            let req = Request::Apply {
                document,
                prune: false,
                validated_at: None,
            };
            let expected = whole
                .as_ref()
                .err()
                .map(|e| Rejection::Invalid(e.to_string()));
            match st.preview(&req) {
                Response::Rejected(r) => assert_eq!(Some(r), expected, "{w}"),
                other => assert!(expected.is_none(), "{w}: {other:?}"),
            }
            assert_eq!(
                st.screen(std::slice::from_ref(&req)),
                vec![expected.clone()],
                "{w}"
            );
            let mut applied = st.clone();
            match applied.apply(2, &req) {
                Response::Rejected(r) => assert_eq!(Some(r), expected, "{w}"),
                other => assert!(expected.is_none(), "{w}: {other:?}"),
            }
            refused += usize::from(whole.is_err());
        }
        assert!(refused >= 6, "{refused}");
        // Deleting what is referenced: the same message as before.
        for (kind, name) in [(Kind::Middleware, "m"), (Kind::Service, "s")] {
            let mut next = base.clone();
            next.remove(kind, name).expect("present");
            let errors = compile_check(&next).expect_err("referenced");
            let req = Request::Delete {
                kind,
                name: name.into(),
                validated_at: None,
            };
            assert_eq!(
                st.preview(&req),
                Response::Rejected(Rejection::Invalid(format!(
                    "cannot delete {} \"{name}\": it is still referenced: {errors}",
                    kind.as_str()
                )))
            );
        }
    }

    #[test]
    fn recent_writes_are_bounded_oldest_first_and_survive_a_snapshot() {
        let mut st = ClusterState::default();
        let n = RecentWrites::CAPACITY + 5;
        for i in 0..n {
            let req = Request::ForgetNode { id: i as u64 }.once(format!("id{i}"));
            st.apply(i as u64 + 1, &req);
        }
        assert_eq!(st.recent_writes.len(), RecentWrites::CAPACITY);
        assert!(st.recent_writes.get("id0").is_none());
        assert!(st.recent_writes.get("id4").is_none());
        assert!(st.recent_writes.get("id5").is_some());
        let bytes = serde_json::to_vec(&st).expect("serializes");
        let back: ClusterState = serde_json::from_slice(&bytes).expect("deserializes");
        assert_eq!(back, st);
        assert!(back.recent_writes.get(&format!("id{}", n - 1)).is_some());
    }

    #[test]
    fn apply_sets_version_to_the_committing_index() {
        let mut st = ClusterState::default();
        let r = st.apply(
            7,
            &Request::Apply {
                document: doc(WEB),
                prune: false,
                validated_at: None,
            },
        );
        match r {
            Response::Applied { version, changes } => {
                assert_eq!(version, 7);
                assert_eq!(changes.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(st.config_version, 7);
    }

    #[test]
    fn unchanged_apply_keeps_version() {
        let mut st = ClusterState::default();
        let req = Request::Apply {
            document: doc(WEB),
            prune: false,
            validated_at: None,
        };
        st.apply(3, &req);
        let r = st.apply(9, &req);
        assert_eq!(
            r,
            Response::Applied {
                version: 3,
                changes: vec![]
            }
        );
    }

    #[test]
    fn invalid_apply_changes_nothing() {
        let mut st = ClusterState::default();
        st.apply(
            2,
            &Request::Apply {
                document: doc(WEB),
                prune: false,
                validated_at: None,
            },
        );
        let before = st.clone();
        let bad = doc("http:\n  routers:\n    x: { rule: \"Host(`b`)\", service: missing }\n");
        let r = st.apply(
            5,
            &Request::Apply {
                document: bad,
                prune: false,
                validated_at: None,
            },
        );
        assert!(
            matches!(r, Response::Rejected(Rejection::Invalid(_))),
            "{r:?}"
        );
        assert_eq!(st, before);
    }

    #[test]
    fn delete_of_referenced_service_is_refused_and_missing_is_not_found() {
        let mut st = ClusterState::default();
        st.apply(
            2,
            &Request::Apply {
                document: doc(WEB),
                prune: false,
                validated_at: None,
            },
        );
        let r = st.apply(
            3,
            &Request::Delete {
                kind: Kind::Service,
                name: "web".into(),
                validated_at: None,
            },
        );
        match r {
            Response::Rejected(Rejection::Invalid(m)) => {
                assert!(m.contains("cannot delete service \"web\""), "{m}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = st.apply(
            4,
            &Request::Delete {
                kind: Kind::Router,
                name: "nope".into(),
                validated_at: None,
            },
        );
        assert!(
            matches!(r, Response::Rejected(Rejection::NotFound(_))),
            "{r:?}"
        );
        let r = st.apply(
            5,
            &Request::Delete {
                kind: Kind::Router,
                name: "web".into(),
                validated_at: None,
            },
        );
        assert!(matches!(r, Response::Applied { version: 5, .. }), "{r:?}");
    }

    #[test]
    fn a_stamp_skips_validation_only_at_the_same_version() {
        // An invalid document stamped as validated at the current version is trusted (the leader
        // vouched for it against this very config); at any other version it is checked again.
        let bad = doc("http:\n  routers:\n    x: { rule: \"Host(`b`)\", service: missing }\n");
        let stamped = Request::Apply {
            document: bad,
            prune: false,
            validated_at: None,
        }
        .validated_at(0);
        let mut st = ClusterState::default();
        assert!(matches!(
            st.clone().apply(4, &stamped),
            Response::Applied { version: 4, .. }
        ));
        st.apply(
            2,
            &Request::Apply {
                document: doc(WEB),
                prune: false,
                validated_at: None,
            },
        );
        let r = st.apply(5, &stamped);
        assert!(
            matches!(r, Response::Rejected(Rejection::Invalid(_))),
            "{r:?}"
        );
    }

    #[test]
    fn acme_commands_move_the_config_version_only_when_managed_changes() {
        use crate::acme::{AcmeCommand, IssuedInfo};
        let mut st = ClusterState::default();
        let acme = |cmd| Request::Acme { cmd, at: 100 };
        st.apply(
            2,
            &acme(AcmeCommand::OrderStarted {
                name: "le/a.test".into(),
                resolver: "le".into(),
                domains: vec!["a.test".into()],
            }),
        );
        assert_eq!(
            st.config_version, 0,
            "recording an order is not a config change"
        );
        st.apply(
            3,
            &acme(AcmeCommand::OrderKey {
                name: "le/a.test".into(),
                key_pem: "K".into(),
            }),
        );
        st.apply(
            4,
            &acme(AcmeCommand::Issued {
                name: "le/a.test".into(),
                cert_pem: "C".into(),
                info: IssuedInfo::default(),
            }),
        );
        assert_eq!(st.config_version, 4);
        assert_eq!(
            st.config.managed.certificates["le/a.test"].pair.cert_pem,
            "C"
        );
        // A user apply with prune keeps the managed certificates.
        st.apply(
            5,
            &Request::Apply {
                document: doc(WEB),
                prune: true,
                validated_at: None,
            },
        );
        assert!(st.config.managed.certificates.contains_key("le/a.test"));
    }

    #[test]
    fn prune_replaces_everything() {
        let mut st = ClusterState::default();
        st.apply(
            2,
            &Request::Apply {
                document: doc(WEB),
                prune: false,
                validated_at: None,
            },
        );
        let r = st.apply(
            3,
            &Request::Apply {
                document: DynamicConfig::default(),
                prune: true,
                validated_at: None,
            },
        );
        assert!(matches!(r, Response::Applied { version: 3, .. }), "{r:?}");
        assert!(st.config.is_empty());
    }

    #[test]
    fn in_place_merge_equals_whole_config_merge() {
        let base = doc(r#"
http:
  routers:
    web: { rule: "Host(`a.example`)", service: web }
    api: { rule: "Host(`api.example`)", service: web, middlewares: [strip] }
  services:
    web: { loadBalancer: { servers: [ { url: "http://127.0.0.1:8080" } ] } }
  middlewares:
    strip: { stripPrefix: { prefixes: ["/api"] } }
tls:
  options:
    modern: { minVersion: VersionTLS13 }
"#);
        let docs = [
            // A new router, a changed one, an unchanged service.
            r#"
http:
  routers:
    new: { rule: "Host(`n.example`)", service: web }
    api: { rule: "Host(`api2.example`)", service: web }
  services:
    web: { loadBalancer: { servers: [ { url: "http://127.0.0.1:8080" } ] } }
"#,
            // Nothing changes.
            r#"
http:
  routers:
    web: { rule: "Host(`a.example`)", service: web }
"#,
            // A TLS option and a middleware.
            r#"
http:
  middlewares:
    strip: { stripPrefix: { prefixes: ["/v2"] } }
tls:
  options:
    modern: { minVersion: VersionTLS12 }
    other: { minVersion: VersionTLS13 }
"#,
            // TCP resources, then a changed TCP router.
            r#"
tcp:
  routers:
    db: { rule: "HostSNI(`*`)", service: db, middlewares: [few] }
  services:
    db: { loadBalancer: { servers: [ { address: "127.0.0.1:5432" } ] } }
  middlewares:
    few: { inFlightConn: { amount: 3 } }
"#,
            r#"
tcp:
  routers:
    db: { rule: "HostSNI(`*`)", service: db }
"#,
            // A TCP servers transport, then a service naming it.
            r#"
tcp:
  serversTransports:
    t: { dialTimeout: 5s }
"#,
            r#"
tcp:
  services:
    db: { loadBalancer: { servers: [ { address: "127.0.0.1:5432" } ], serversTransport: t } }
"#,
        ];
        let mut st = ClusterState::default();
        st.apply(
            1,
            &Request::Apply {
                document: base,
                prune: false,
                validated_at: None,
            },
        );
        for (i, d) in docs.iter().enumerate() {
            let document = doc(d);
            let whole_next = st.config.merged(&document);
            let whole_changes = diff(&st.config, &whole_next);
            let before = st.config_version;
            let r = st.apply(
                10 + i as u64,
                &Request::Apply {
                    document,
                    prune: false,
                    validated_at: Some(before),
                },
            );
            assert_eq!(
                r,
                Response::Applied {
                    version: if whole_changes.is_empty() {
                        before
                    } else {
                        10 + i as u64
                    },
                    changes: whole_changes,
                },
                "document {i}"
            );
            assert_eq!(*st.config, whole_next, "document {i}");
        }
    }

    #[test]
    fn a_replayed_entry_keeps_its_first_verdict_without_validating_again() {
        // A router whose service does not exist: refused when validated.
        let bad = Request::Apply {
            document: doc("http:\n  routers:\n    r: { rule: \"Host(`r`)\", service: missing }\n"),
            prune: false,
            validated_at: None,
        };
        let mut st = ClusterState::default();
        assert!(matches!(st.apply(3, &bad), Response::Rejected(_)));
        // Replayed, the recorded verdict decides, both ways.
        let mut replay = ClusterState::default();
        assert!(matches!(
            replay.apply_known(3, &bad, Some(false)),
            Response::Rejected(_)
        ));
        assert_eq!(replay, ClusterState::default());
        let good = Request::Apply {
            document: doc(WEB),
            prune: false,
            validated_at: Some(999),
        };
        match replay.apply_known(4, &good, Some(true)) {
            Response::Applied { version, changes } => {
                assert_eq!(version, 4);
                assert_eq!(changes.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut fresh = ClusterState::default();
        fresh.apply(4, &good);
        assert_eq!(replay, fresh, "same state as a validated apply");
    }

    fn upsert(text: &str) -> Request {
        Request::Apply {
            document: doc(text),
            prune: false,
            validated_at: None,
        }
    }

    fn router(name: &str, service: &str) -> Request {
        upsert(&format!(
            "http:\n  routers:\n    {name}: {{ rule: \"Host(`{name}.example`)\", service: {service} }}\n"
        ))
    }

    fn svc(name: &str) -> Request {
        upsert(&format!(
            "http:\n  services:\n    {name}: {{ loadBalancer: {{ servers: [ {{ url: \"http://127.0.0.1:81\" }} ] }} }}\n"
        ))
    }

    fn delete_svc(name: &str) -> Request {
        Request::Delete {
            kind: Kind::Service,
            name: name.into(),
            validated_at: None,
        }
    }

    #[test]
    fn a_traced_write_gives_its_trace_to_the_version_it_makes() {
        const T1: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        const T2: &str = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01";
        let traced = |r: Request, id: &str, t: &str| r.once_traced(id.into(), Some(t.into()));
        let mut st = ClusterState::default();
        st.apply(3, &traced(svc("a"), "w1", T1));
        assert_eq!(
            (st.config_version, st.config_trace.as_deref()),
            (3, Some(T1))
        );
        // A traced write that changes nothing leaves the version and its trace alone.
        st.apply(4, &traced(svc("a"), "w2", T2));
        assert_eq!(
            (st.config_version, st.config_trace.as_deref()),
            (3, Some(T1))
        );
        // An untraced change makes a version without a trace.
        st.apply(5, &svc("b").once("w3".into()));
        assert_eq!((st.config_version, st.config_trace.as_deref()), (5, None));
        // In a batch the last traced command that changed something gives the trace, whatever
        // the untraced ones after it do.
        let cmds: Arc<[Request]> = vec![
            traced(svc("c"), "w4", T1),
            traced(svc("d"), "w5", T2),
            svc("e").once("w6".into()),
        ]
        .into();
        st.apply(
            6,
            &Request::Batch {
                cmds,
                validated_at: None,
            },
        );
        assert_eq!(
            (st.config_version, st.config_trace.as_deref()),
            (6, Some(T2))
        );
        // The trace travels in the log entry (JSON) and an untraced entry reads as before.
        let json = serde_json::to_string(&traced(svc("f"), "w7", T1)).expect("encodes");
        assert!(json.contains(T1), "{json}");
        let plain = serde_json::to_string(&svc("f").once("w8".into())).expect("encodes");
        assert!(!plain.contains("trace"), "{plain}");
        let back: Request = serde_json::from_str(&plain).expect("decodes");
        assert!(matches!(back, Request::Once { trace: None, .. }));
    }

    /// Applies `cmds` one entry each, from index `first`: what a batch must be equivalent to.
    fn one_by_one(st: &mut ClusterState, first: u64, cmds: &[Request]) -> Vec<Response> {
        cmds.iter()
            .enumerate()
            .map(|(j, c)| st.apply(first + j as u64, c))
            .collect()
    }

    #[test]
    fn screen_accepts_a_valid_batch_with_one_compile_and_it_applies_trusted() {
        let mut st = ClusterState::default();
        st.apply(2, &upsert(WEB));
        let cmds = vec![router("a", "web"), svc("s2"), router("b", "s2")];
        assert_eq!(st.screen(&cmds), vec![None, None, None]);
        let mut sequential = st.clone();
        one_by_one(&mut sequential, 10, &cmds);
        let resps = st.apply_batch(10, &cmds, Some(2), |_| None);
        assert!(resps
            .iter()
            .all(|r| matches!(r, Response::Applied { version: 10, .. })));
        assert_eq!(st.config, sequential.config);
        assert_eq!(st.config_version, 10);
    }

    #[test]
    fn screen_refuses_only_the_bad_commands_with_the_preview_error() {
        let mut st = ClusterState::default();
        st.apply(2, &upsert(WEB));
        let bad = router("x", "missing");
        let cmds = vec![
            router("a", "web"),
            bad.clone(),
            delete_svc("nope"),
            svc("s2"),
        ];
        let verdicts = st.screen(&cmds);
        assert_eq!(verdicts[0], None);
        match (&verdicts[1], st.preview(&bad)) {
            (Some(got), Response::Rejected(want)) => assert_eq!(got, &want),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(verdicts[2], Some(Rejection::NotFound(_))));
        assert_eq!(verdicts[3], None);
    }

    #[test]
    fn screen_validates_each_command_against_the_ones_before_it() {
        // Deleting `lonely` is fine alone, and so is a router to it alone; together, in this
        // order, the router is refused (and the delete is not).
        let mut st = ClusterState::default();
        st.apply(2, &svc("lonely"));
        let cmds = vec![delete_svc("lonely"), router("r", "lonely")];
        let verdicts = st.screen(&cmds);
        assert_eq!(verdicts[0], None);
        assert!(
            matches!(verdicts[1], Some(Rejection::Invalid(_))),
            "{verdicts:?}"
        );
    }

    #[test]
    fn an_unscreened_batch_validates_each_command_in_order_like_separate_entries() {
        let mut st = ClusterState::default();
        st.apply(2, &svc("lonely"));
        let cmds = vec![
            router("a", "lonely"),
            router("x", "missing"),
            delete_svc("lonely"),
            svc("s2"),
        ];
        let mut sequential = st.clone();
        let want = one_by_one(&mut sequential, 10, &cmds);
        // Stamped with another version: validated again, command by command.
        let got = st.apply_batch(10, &cmds, Some(1), |_| None);
        assert!(matches!(got[1], Response::Rejected(_)));
        assert!(matches!(got[2], Response::Rejected(_)));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                matches!(g, Response::Rejected(_)),
                matches!(w, Response::Rejected(_))
            );
        }
        assert_eq!(st.config, sequential.config);
    }

    #[test]
    fn a_replayed_batch_keeps_each_commands_first_verdict() {
        let mut st = ClusterState::default();
        st.apply(2, &upsert(WEB));
        let cmds = vec![router("a", "web"), router("b", "web")];
        // Command 1 was refused the first time (whatever the reason): it stays refused.
        let got = st.apply_batch(10, &cmds, None, |j| Some(j == 0));
        assert!(matches!(got[0], Response::Applied { version: 10, .. }));
        assert!(matches!(got[1], Response::Rejected(_)));
        assert!(st.config.http.routers.contains_key("a"));
        assert!(!st.config.http.routers.contains_key("b"));
    }

    #[test]
    fn only_config_commands_can_be_batched() {
        let st = ClusterState::default();
        let cmds = vec![Request::ForgetNode { id: 3 }];
        assert!(matches!(st.screen(&cmds)[0], Some(Rejection::Invalid(_))));
        let mut st2 = st.clone();
        let got = st2.apply_batch(4, &cmds, Some(0), |_| None);
        assert!(matches!(got[0], Response::Rejected(_)));
    }

    #[test]
    fn a_batch_round_trips_through_the_log_encoding() {
        let req = Request::Batch {
            cmds: vec![router("a", "web"), delete_svc("x")].into(),
            validated_at: Some(3),
        };
        let json = serde_json::to_vec(&req).expect("encode");
        let back: Request = serde_json::from_slice(&json).expect("decode");
        assert_eq!(back, req);
    }

    #[test]
    fn a_retried_write_in_a_batch_is_answered_from_its_record() {
        let mut st = ClusterState::default();
        st.apply(2, &svc("lonely"));
        let del = delete_svc("lonely").once("w1".into());
        let first = st.apply(3, &del);
        assert!(matches!(first, Response::Applied { version: 3, .. }));
        // The retry would be NotFound now; in a batch it is accepted and answers the first outcome.
        let cmds = vec![del, svc("s2").once("w2".into())];
        assert_eq!(st.screen(&cmds), vec![None, None]);
        let got = st.apply_batch(7, &cmds, Some(3), |_| None);
        assert_eq!(got[0], first);
        assert!(matches!(got[1], Response::Applied { version: 7, .. }));
    }
}
