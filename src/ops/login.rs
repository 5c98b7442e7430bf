//! `hoist login` and `hoist logout`: credentials checked against the registry, then stored
//! where docker keeps them.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::registry::RegistryError;
use crate::secret::Secret;
use crate::session::Session;

/// Credentials to check and store.
#[derive(Clone, Debug)]
pub struct Login {
    /// Registry host, with its port if it has one.
    pub host: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: Secret,
}

/// Checks `request`'s credentials against the registry (the session must hold them as its
/// explicit credentials), then stores them; returns the file they went to.
pub fn login(session: &Session, request: &Login) -> Result<PathBuf> {
    let Login { host, username, password } = request;
    session.block_on(async {
        match session.client().check_login(host).await {
            Err(Error::Registry(RegistryError::Unauthorized { message, .. })) => {
                return Err(Error::LoginRefused { registry: host.clone(), username: username.clone(), message })
            }
            other => other?,
        }
        session.client().credentials().store(host, username, password).await
    })
}

/// Removes the credentials stored for `host`; whether there were any.
pub fn logout(session: &Session, host: &str) -> Result<bool> {
    session.block_on(session.client().credentials().erase(host))
}
