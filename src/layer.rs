//! [`MeshxAuthLayer`]: the [`tower::Layer`] that wraps a service with [`MeshxAuthService`].

use crate::replay::{BufferBodies, CloneBodies, CloneBodyFn, EmptyBodiesOnly};
use crate::service::MeshxAuthService;
use crate::shared::Shared;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps any `tower::Service<http::Request<B>>` so that its requests carry the MeshX credentials.
///
/// Made by [`MeshxAuth::layer`](crate::MeshxAuth::layer); cheap to clone. By default only
/// bodyless requests are replayed after a 401; see [`replay_cloneable_bodies`] and
/// [`replay_body_with`].
///
/// [`replay_cloneable_bodies`]: MeshxAuthLayer::replay_cloneable_bodies
/// [`replay_body_with`]: MeshxAuthLayer::replay_body_with
#[derive(Clone)]
pub struct MeshxAuthLayer<P = EmptyBodiesOnly> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: P,
    pub(crate) retry: bool,
}

impl<P: fmt::Debug> fmt::Debug for MeshxAuthLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshxAuthLayer")
            .field("auth", &self.shared)
            .field("replay", &self.policy)
            .field("retry_on_unauthorized", &self.retry)
            .finish()
    }
}

impl<P> MeshxAuthLayer<P> {
    /// Replays, after a 401, any request whose body is `Clone` (such as `Full<Bytes>`),
    /// byte for byte.
    pub fn replay_cloneable_bodies(self) -> MeshxAuthLayer<CloneBodies> {
        self.with_policy(CloneBodies)
    }

    /// Replays, after a 401, the bodies `clone_body` can copy (`None`: not replayable). Called
    /// once per request whose body is not known to be empty, before it is sent.
    pub fn replay_body_with<B, F>(self, clone_body: F) -> MeshxAuthLayer<CloneBodyFn<F>>
    where
        F: Fn(&B) -> Option<B> + Clone + Send + Sync + 'static,
    {
        self.with_policy(CloneBodyFn(clone_body))
    }

    /// Replays, after a 401, bodies that are complete at once and at most `max_bytes` long, such
    /// as unary gRPC requests: they are read into memory before the first send, and both the body
    /// sent and its copy are rebuilt with `rebuild` (for tonic: `tonic::body::Body::new`). Longer
    /// bodies and streams still being written are sent unchanged and never replayed: nothing is
    /// buffered without bound, nothing waits.
    ///
    /// ```
    /// # fn demo(auth: &meshx_auth::MeshxAuth, channel: tonic::transport::Channel) {
    /// let layer = auth.layer().replay_buffered(64 * 1024, tonic::body::Body::new);
    /// let channel = tower::ServiceBuilder::new().layer(layer).service(channel);
    /// let client = tonic_health::pb::health_client::HealthClient::new(channel);
    /// # }
    /// ```
    pub fn replay_buffered<B, F>(
        self,
        max_bytes: usize,
        rebuild: F,
    ) -> MeshxAuthLayer<BufferBodies<F>>
    where
        F: Fn(crate::replay::Buffered<B>) -> B + Clone + Send + Sync + 'static,
    {
        self.with_policy(BufferBodies { max_bytes, rebuild })
    }

    /// Turns the 401 retry on or off for the services of this layer (default: the builder's
    /// [`retry_on_unauthorized`](crate::MeshxAuthBuilder::retry_on_unauthorized), on).
    pub fn retry_on_unauthorized(mut self, retry: bool) -> Self {
        self.retry = retry;
        self
    }

    fn with_policy<Q>(self, policy: Q) -> MeshxAuthLayer<Q> {
        MeshxAuthLayer {
            shared: self.shared,
            policy,
            retry: self.retry,
        }
    }
}

impl<S, P: Clone> Layer<S> for MeshxAuthLayer<P> {
    type Service = MeshxAuthService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshxAuthService {
            inner,
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            retry: self.retry,
        }
    }
}
