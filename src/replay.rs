//! Which request bodies may be sent a second time after a 401.
//!
//! A request is replayed only when its body can be reproduced exactly. By default that is a body
//! whose size hint is exactly zero (replayed as `B::default()`); anything else needs a policy that
//! can clone it, as tower-http's follow-redirect does.

use http_body::Body;

/// Decides whether (and how) a request body can be sent again.
///
/// Implemented by [`EmptyBodiesOnly`] (the default), [`CloneBodies`] and [`CloneBodyFn`].
pub trait ReplayBody<B>: Clone + Send + Sync + 'static {
    /// A copy of `body` to send again, or `None` when it cannot be reproduced.
    /// Called before the first send, only for bodies whose size is not known to be zero.
    fn clone_body(&self, body: &B) -> Option<B>;
}

/// Replays only bodyless requests (size hint exactly 0), as `B::default()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyBodiesOnly;

impl<B> ReplayBody<B> for EmptyBodiesOnly {
    #[inline]
    fn clone_body(&self, _body: &B) -> Option<B> {
        None
    }
}

/// Replays any body that is `Clone`, such as `http_body_util::Full<Bytes>` or `String`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBodies;

impl<B: Clone> ReplayBody<B> for CloneBodies {
    #[inline]
    fn clone_body(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}

/// Replays what a function of yours can copy (`None`: not replayable).
#[derive(Clone, Copy)]
pub struct CloneBodyFn<F>(pub(crate) F);

impl<F> std::fmt::Debug for CloneBodyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloneBodyFn")
    }
}

impl<B, F> ReplayBody<B> for CloneBodyFn<F>
where
    F: Fn(&B) -> Option<B> + Clone + Send + Sync + 'static,
{
    #[inline]
    fn clone_body(&self, body: &B) -> Option<B> {
        (self.0)(body)
    }
}

/// The body to replay with, decided before the first send.
pub(crate) enum Replayable<B> {
    /// Size hint exactly 0: replay with `B::default()`.
    Empty,
    /// A copy made by the policy.
    Copy(B),
}

impl<B: Body + Default> Replayable<B> {
    pub(crate) fn of<P: ReplayBody<B>>(policy: &P, body: &B) -> Option<Self> {
        if body.size_hint().exact() == Some(0) {
            Some(Replayable::Empty)
        } else {
            policy.clone_body(body).map(Replayable::Copy)
        }
    }
}

impl<B: Default> Replayable<B> {
    pub(crate) fn into_body(self) -> B {
        match self {
            Replayable::Empty => B::default(),
            Replayable::Copy(body) => body,
        }
    }
}
