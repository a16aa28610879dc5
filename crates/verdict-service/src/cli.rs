//! `verdict token create|list|revoke`: tokens from the command line, on the
//! storage `--data` names, with no admin token needed (whoever can run the
//! binary on the data can read it anyway). A running service sees a change
//! within a second (its token cache's freshness).

use crate::config::{TokenArgs, TokenCommand};
use crate::model::time::{now_ms, rfc3339};
use crate::model::tokens::{hash_secret, invalid_scopes, new_secret, ADMIN_ID};
use crate::storage::{StorageError, TokenRow};

/// Runs a token command; what to print, or why it could not.
pub async fn token(args: TokenArgs) -> Result<String, String> {
    let storage = crate::open_storage(&args.data)
        .await
        .map_err(|e| format!("cannot open storage: {e}"))?;
    match args.command {
        TokenCommand::Create {
            scopes,
            collections,
            rate_limit,
            write_quota,
        } => {
            if let Some(i) = invalid_scopes(&scopes).first() {
                return Err(format!(
                    "`{}` is not a scope: use read, write or admin",
                    scopes[*i]
                ));
            }
            let mut granted = Vec::new();
            for name in &collections {
                match storage.collections.get_collection(name).await {
                    Ok(Some(c)) => granted.push(c.id),
                    Ok(None) => {
                        return Err(format!("there is no collection `{name}`; create it first"))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            let id = uuid::Uuid::now_v7().simple().to_string();
            let secret = new_secret();
            let row = TokenRow {
                id: id.clone(),
                secret_hash: hash_secret(&secret),
                scopes,
                collections: (!collections.is_empty()).then_some(granted),
                rate_limit: rate_limit
                    .0
                    .map(|q| (q.requests, q.per.as_secs().max(1) as u32)),
                write_quota,
                created_at: now_ms(),
                revoked_at: None,
            };
            storage
                .tokens
                .insert_token(&row)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("token {id} (shown once, keep it): {id}.{secret}"))
        }
        TokenCommand::List => {
            let rows = storage
                .tokens
                .list_tokens()
                .await
                .map_err(|e| e.to_string())?;
            let mut out = String::from("id\tscopes\tcreated\trevoked");
            for t in rows {
                out.push_str(&format!(
                    "\n{}\t{}\t{}\t{}",
                    t.id,
                    t.scopes.join(","),
                    rfc3339(t.created_at),
                    t.revoked_at.map_or("-".to_string(), rfc3339)
                ));
            }
            Ok(out)
        }
        TokenCommand::Revoke { id } => {
            if id == ADMIN_ID {
                return Err(
                    "the bootstrap admin token is replaced by restarting with a new --admin-token"
                        .into(),
                );
            }
            match storage.tokens.revoke_token(&id, now_ms()).await {
                Ok(()) => Ok(format!("token {id} revoked")),
                Err(StorageError::NotFound) => Err(format!("no active token has the id {id}")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}
