//! Token and proxy-join RPCs. Who may call them is decided before they run, by
//! [`crate::security::Authed`].

use switchyard_proto::admin::*;
use switchyard_store::{Request as Cmd, Role, SecurityCommand};

use super::AdminService;
use crate::errors::ApiError;
use crate::security::{self, now_unix};

type ApiResult<T> = Result<T, ApiError>;

fn info(t: &switchyard_store::TokenRecord) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        role: t.role.as_str().into(),
        description: t.description.clone(),
        created_unix: t.created,
        expires_unix: t.expires.unwrap_or(0),
        revoked: t.revoked,
    }
}

impl AdminService {
    /// On the entry node: generates the secret (kept here) and stamps id + hash on the request.
    pub(super) fn prepare_token(r: &mut CreateTokenRequest) -> ApiResult<Option<String>> {
        if Role::parse(&r.role).is_none() {
            return Err(ApiError::Invalid(format!(
                "role {:?}: expected admin, viewer or proxy",
                r.role
            )));
        }
        if !r.secret_sha256.is_empty() {
            return Ok(None);
        }
        let (id, secret) = security::new_token();
        r.id = id;
        r.secret_sha256 = security::hash_token(&secret);
        Ok(Some(secret))
    }

    pub(super) async fn create_token_local(
        &self,
        r: CreateTokenRequest,
    ) -> ApiResult<CreateTokenResponse> {
        let role =
            Role::parse(&r.role).ok_or_else(|| ApiError::Invalid(format!("role {:?}", r.role)))?;
        if r.id.is_empty() || r.secret_sha256.len() != 64 {
            return Err(ApiError::Invalid("token id and hash are required".into()));
        }
        let cmd = SecurityCommand::CreateToken {
            id: r.id.clone(),
            hash: r.secret_sha256.clone(),
            role,
            description: r.description.clone(),
            ttl_secs: (r.ttl_seconds > 0).then_some(r.ttl_seconds),
        };
        self.commit(Cmd::Security {
            cmd,
            at: now_unix(),
        })
        .await?;
        let state = self.shared.applied.borrow().state.security.clone();
        let token = state
            .tokens
            .get(&r.id)
            .map(info)
            .ok_or_else(|| ApiError::Internal("created token not found".into()))?;
        Ok(CreateTokenResponse {
            token: Some(token),
            secret: String::new(),
        })
    }

    pub(super) async fn revoke_token_local(
        &self,
        r: RevokeTokenRequest,
    ) -> ApiResult<RevokeTokenResponse> {
        self.commit(Cmd::Security {
            cmd: SecurityCommand::RevokeToken { id: r.id },
            at: now_unix(),
        })
        .await?;
        Ok(RevokeTokenResponse {})
    }

    pub(super) fn list_tokens_local(&self) -> ListTokensResponse {
        let state = self.shared.applied.borrow();
        ListTokensResponse {
            tokens: state.state.security.tokens.values().map(info).collect(),
        }
    }

    /// Issues a proxy client certificate from this node's copy of the CA (no write).
    pub(super) fn join_proxy_local(&self, r: JoinProxyRequest) -> ApiResult<ProxyCertificate> {
        issue_for_proxy(&self.shared, &r.proxy_id, &r.public_key_pem)
    }
}

/// A client certificate for proxy `proxy_id` and its public key, valid `--proxy-cert-ttl`.
pub fn issue_for_proxy(
    shared: &crate::shared::Shared,
    proxy_id: &str,
    public_key_pem: &str,
) -> ApiResult<ProxyCertificate> {
    if proxy_id.is_empty() || proxy_id.len() > 200 {
        return Err(ApiError::Invalid("proxy_id: 1 to 200 characters".into()));
    }
    let ca = shared
        .applied
        .borrow()
        .state
        .security
        .ca
        .clone()
        .ok_or_else(|| ApiError::Unavailable("the cluster CA is not initialized yet".into()))?;
    let (cert_pem, not_after_unix) =
        security::issue_proxy_cert(&ca, proxy_id, public_key_pem, shared.opts.proxy_cert_ttl)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
    tracing::info!(proxy = %proxy_id, not_after_unix, "issued a proxy client certificate");
    Ok(ProxyCertificate {
        cert_pem,
        ca_pem: ca.cert_pem,
        not_after_unix,
    })
}
