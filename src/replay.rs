//! Which request bodies may be sent a second time after a 401.
//!
//! A request is replayed only when its body can be reproduced exactly. By default that is a body
//! whose size hint is exactly zero (replayed as `B::default()`); anything else needs a policy that
//! can copy it: [`CloneBodies`] and [`CloneBodyFn`] as tower-http's follow-redirect does, or
//! [`BufferBodies`] for bodies that are complete at once but not `Clone` (unary gRPC).

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tower::BoxError;

/// Decides whether (and how) a request body can be sent again.
///
/// Implemented by [`EmptyBodiesOnly`] (the default), [`CloneBodies`], [`CloneBodyFn`] and
/// [`BufferBodies`].
pub trait ReplayBody<B>: Clone + Send + Sync + 'static {
    /// Splits `body` into the body to send now and, when it can be reproduced, a copy to send
    /// again. Called before the first send, only for bodies whose size is not known to be zero.
    fn prepare(&self, body: B) -> (B, Option<B>);

    /// False when [`prepare`](ReplayBody::prepare) never yields a copy: the request path then
    /// skips it.
    fn may_replay(&self) -> bool {
        true
    }
}

/// Replays only bodyless requests (size hint exactly 0), as `B::default()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyBodiesOnly;

impl<B> ReplayBody<B> for EmptyBodiesOnly {
    #[inline]
    fn prepare(&self, body: B) -> (B, Option<B>) {
        (body, None)
    }

    #[inline]
    fn may_replay(&self) -> bool {
        false
    }
}

/// Replays any body that is `Clone`, such as `http_body_util::Full<Bytes>` or `String`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBodies;

impl<B: Clone> ReplayBody<B> for CloneBodies {
    #[inline]
    fn prepare(&self, body: B) -> (B, Option<B>) {
        let copy = body.clone();
        (body, Some(copy))
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
    fn prepare(&self, body: B) -> (B, Option<B>) {
        let copy = (self.0)(&body);
        (body, copy)
    }
}

/// Buffers bodies that are complete *at once* (every frame ready without waiting) and at most
/// `max_bytes` long, and rebuilds both the body to send and the copy through `rebuild`; see
/// [`MeshxAuthLayer::replay_buffered`](crate::MeshxAuthLayer::replay_buffered).
///
/// A body that is longer, or not complete at once (a client stream still being written), is
/// sent unchanged (its already-read prefix first) and not replayed: nothing is buffered without
/// bound and nothing waits.
#[derive(Clone, Copy)]
pub struct BufferBodies<F> {
    pub(crate) max_bytes: usize,
    pub(crate) rebuild: F,
}

impl<F> std::fmt::Debug for BufferBodies<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferBodies")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<B, F> ReplayBody<B> for BufferBodies<F>
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    F: Fn(Buffered<B>) -> B + Clone + Send + Sync + 'static,
{
    fn prepare(&self, mut body: B) -> (B, Option<B>) {
        if body.size_hint().lower() > self.max_bytes as u64 {
            return (body, None);
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut data = BytesMut::new();
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(None) => {
                    let bytes = data.freeze();
                    let copy = (self.rebuild)(Buffered::full(bytes.clone()));
                    return ((self.rebuild)(Buffered::full(bytes)), Some(copy));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) if data.len() + chunk.len() <= self.max_bytes => {
                        data.extend_from_slice(&chunk);
                    }
                    Ok(chunk) => {
                        return (
                            (self.rebuild)(Buffered::partial(
                                data.freeze(),
                                Some(Ok(Frame::data(chunk))),
                                body,
                            )),
                            None,
                        );
                    }
                    Err(frame) => {
                        // Trailers: not a simple byte body; send as it is.
                        return (
                            (self.rebuild)(Buffered::partial(data.freeze(), Some(Ok(frame)), body)),
                            None,
                        );
                    }
                },
                Poll::Ready(Some(Err(error))) => {
                    return (
                        (self.rebuild)(Buffered::partial(
                            data.freeze(),
                            Some(Err(error.into())),
                            body,
                        )),
                        None,
                    );
                }
                Poll::Pending => {
                    // Not complete at once (a stream): never wait, never replay.
                    return (
                        (self.rebuild)(Buffered::partial(data.freeze(), None, body)),
                        None,
                    );
                }
            }
        }
    }
}

/// The body [`BufferBodies`] hands to its `rebuild` function: either the whole buffered body, or
/// the prefix it read followed by the rest of the original body.
pub struct Buffered<B> {
    prefix: Option<Bytes>,
    held: Option<Result<Frame<Bytes>, BoxError>>,
    rest: Option<B>,
}

impl<B> std::fmt::Debug for Buffered<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffered")
            .field("prefix_len", &self.prefix.as_ref().map(Bytes::len))
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

impl<B> Buffered<B> {
    fn full(bytes: Bytes) -> Self {
        Buffered {
            prefix: Some(bytes).filter(|b| !b.is_empty()),
            held: None,
            rest: None,
        }
    }

    fn partial(prefix: Bytes, held: Option<Result<Frame<Bytes>, BoxError>>, rest: B) -> Self {
        Buffered {
            prefix: Some(prefix).filter(|b| !b.is_empty()),
            held,
            rest: Some(rest),
        }
    }

    /// True when the whole body was buffered (and so can be replayed).
    pub fn is_complete(&self) -> bool {
        self.rest.is_none()
    }
}

impl<B> Body for Buffered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(held) = self.held.take() {
            return Poll::Ready(Some(held));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx).map_err(Into::into),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.held.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.prefix.as_ref().map_or(0, |b| b.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(_) if self.held.is_some() => SizeHint::new(),
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + buffered);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + buffered);
                }
                hint
            }
        }
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
    /// Decides how `body` could be replayed, replacing it by the body to send when the policy
    /// needs to (buffering).
    #[inline]
    pub(crate) fn prepare<P: ReplayBody<B>>(policy: &P, body: &mut B) -> Option<Self> {
        if body.size_hint().exact() == Some(0) {
            return Some(Replayable::Empty);
        }
        if !policy.may_replay() {
            return None;
        }
        let (send, copy) = policy.prepare(std::mem::take(body));
        *body = send;
        copy.map(Replayable::Copy)
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[derive(Debug, Default)]
    struct Never;
    impl Body for Never {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    fn boxed<B>(b: Buffered<B>) -> http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        b.boxed_unsync()
    }

    #[tokio::test]
    async fn buffers_complete_bodies_and_passes_streams_through() {
        let policy = BufferBodies {
            max_bytes: 8,
            rebuild: |b: Buffered<Full<Bytes>>| {
                Full::new(Bytes::from(format!("{:?}", b.is_complete())))
            },
        };
        let (send, copy) = policy.prepare(Full::new(Bytes::from_static(b"small")));
        assert_eq!(send.collect().await.unwrap().to_bytes(), "true");
        assert!(copy.is_some());
        // Known to be too large: sent as it is.
        let (send, copy) = policy.prepare(Full::new(Bytes::from_static(b"much too large")));
        assert_eq!(send.collect().await.unwrap().to_bytes(), "much too large");
        assert!(copy.is_none());

        // A stream that is not ready is neither waited for nor buffered.
        let policy = BufferBodies {
            max_bytes: 8,
            rebuild: |b: Buffered<http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>>| {
                boxed(b)
            },
        };
        let stream = Never.map_err(|e| -> BoxError { match e {} }).boxed_unsync();
        let (send, copy) = policy.prepare(stream);
        assert!(copy.is_none());
        assert!(!send.is_end_stream());
    }
}
