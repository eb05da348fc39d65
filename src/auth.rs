//! [`MeshxAuth`]: the handle on one set of MeshX credentials.

use crate::builder::MeshxAuthBuilder;
use crate::layer::MeshxAuthLayer;
use crate::replay::EmptyBodiesOnly;
use crate::shared::Shared;
use crate::status::AuthStatus;
use std::fmt;
use std::sync::Arc;

/// One set of MeshX credentials, kept fresh in the background.
///
/// Cheap to clone: every clone, every [`MeshxAuthLayer`] and every service made from it share the
/// same token, the same refresher and the same counters. The refresher stops on
/// [`shutdown`](MeshxAuth::shutdown) or when the last clone, layer and service are dropped.
#[derive(Clone)]
pub struct MeshxAuth {
    pub(crate) shared: Arc<Shared>,
}

impl MeshxAuth {
    /// Starts the configuration.
    pub fn builder() -> MeshxAuthBuilder {
        MeshxAuthBuilder::new()
    }

    /// A [`tower::Layer`] that adds the credentials to every request of the service it wraps.
    pub fn layer(&self) -> MeshxAuthLayer<EmptyBodiesOnly> {
        MeshxAuthLayer {
            shared: self.shared.clone(),
            policy: EmptyBodiesOnly,
            retry: self.shared.retry_on_unauthorized,
        }
    }

    /// Stops the background refresh and withdraws the credential at once: no login happens
    /// afterwards, and requests through this `MeshxAuth`'s services fail with
    /// [`Error::Shutdown`](crate::Error::Shutdown) instead of being sent. An in-flight login is
    /// abandoned.
    pub fn shutdown(&self) {
        if !self.shared.signals.stop.is_cancelled() {
            tracing::info!(target: "meshx_auth", "shutting down");
        }
        self.shared.withdraw();
    }

    /// A snapshot of the state: validity, last error, counters.
    pub fn status(&self) -> AuthStatus {
        self.shared.status()
    }

    /// The organizations the user can see (`GET {api}/iam/organization/list`). The `x-org`
    /// header takes an organization's [`name`](crate::Organization::name).
    pub async fn organizations(&self) -> Result<Vec<crate::Organization>, crate::Error> {
        self.shared.organizations().await
    }

    /// The organization name sent in `x-org`.
    pub fn org(&self) -> &str {
        &self.shared.org_name
    }

    /// The API base URL (ending in `/api`).
    pub fn api_url(&self) -> &str {
        self.shared.api_url.as_str()
    }
}

impl fmt::Debug for MeshxAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shared, f)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = self.cell.load();
        f.debug_struct("MeshxAuth")
            .field("api_url", &self.api_url.as_str())
            .field("org", &self.org_name)
            .field("source", &self.source)
            .field("generation", &credential.generation)
            .field("expired", &credential.is_expired())
            .field("stopped", &self.signals.stop.is_cancelled())
            .finish_non_exhaustive()
    }
}
