//! [`ResponseFuture`]: the answer of [`MeshxAuthService`](crate::MeshxAuthService), with the
//! single 401 retry.

use crate::credential::Credential;
use crate::error::Error;
use crate::local::{self, Handle};
use crate::replay::Replayable;
use crate::service::{authorize, copy_head};
use crate::shared::Shared;
use http::header::AUTHORIZATION;
use http::{HeaderName, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use tower::BoxError;
use tower::util::Oneshot;
use tower_service::Service;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// gRPC `UNAUTHENTICATED`.
const GRPC_UNAUTHENTICATED: &[u8] = b"16";

/// A wait for a usable token newer than some generation: boxed, because it only exists on the
/// rare paths (a 401, an expired token).
pub(crate) struct WaitForToken(
    Pin<Box<dyn Future<Output = Result<Arc<Credential>, Error>> + Send + 'static>>,
);

impl WaitForToken {
    pub(crate) fn new(shared: Arc<Shared>, generation: u64) -> Self {
        WaitForToken(Box::pin(async move {
            shared.fresh_credential(generation).await
        }))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<Credential>, Error>> {
        self.0.as_mut().poll(cx)
    }
}

/// What a request that waits for a token before its first send keeps meanwhile.
struct Pending<S, B> {
    shared: Arc<Shared>,
    request: Request<B>,
    service: S,
    replay_body: Option<Replayable<B>>,
    retry: bool,
}

/// What a replay needs: the request head, its body, and the service to send it through.
struct Replay<S, B> {
    head: Request<()>,
    body: Replayable<B>,
    service: S,
}

pin_project! {
    /// The future of [`MeshxAuthService`](crate::MeshxAuthService).
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, RB>,
        // Present when a 401 is ours to handle (retry on, and we added the token).
        handle: Option<Arc<Handle>>,
        generation: u64,
        replay: Option<Replay<S, B>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        // The token had expired: waiting for a fresh one before the first send. Boxed, like
        // every rare state, to keep the future small for the common path.
        Waiting { wait: WaitForToken, pending: Option<Box<Pending<S, B>>> },
        // The first send.
        Calling { #[pin] future: S::Future },
        // A 401 came back: waiting for the shared refresh, holding the answer.
        Refreshing { wait: WaitForToken, response: Option<Response<RB>> },
        // The one replay.
        Replaying { future: Pin<Box<Oneshot<S, Request<B>>>> },
    }
}

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<B>>,
{
    /// No 401 handling: the inner future as it is.
    #[inline]
    pub(crate) fn passthrough(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            handle: None,
            generation: 0,
            replay: None,
        }
    }

    /// A 401 triggers a refresh; the 401 is handed back once it is done.
    pub(crate) fn refresh_only(future: S::Future, handle: Arc<Handle>, generation: u64) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            handle: Some(handle),
            generation,
            replay: None,
        }
    }

    /// A 401 triggers a refresh and one replay.
    pub(crate) fn replayable(
        future: S::Future,
        handle: Arc<Handle>,
        generation: u64,
        head: Request<()>,
        body: Replayable<B>,
        service: S,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            handle: Some(handle),
            generation,
            replay: Some(Replay {
                head,
                body,
                service,
            }),
        }
    }

    /// No usable token yet: wait for one, then send.
    pub(crate) fn wait(
        wait: WaitForToken,
        request: Request<B>,
        service: S,
        replay_body: Option<Replayable<B>>,
        shared: Arc<Shared>,
        retry: bool,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                wait,
                pending: Some(Box::new(Pending {
                    shared,
                    request,
                    service,
                    replay_body,
                    retry,
                })),
            },
            handle: None,
            generation: 0,
            replay: None,
        }
    }
}

/// A 401, or a gRPC UNAUTHENTICATED sent in the headers (a trailers-only answer).
#[inline]
fn is_unauthorized<RB>(response: &Response<RB>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        || response
            .headers()
            .get(GRPC_STATUS)
            .is_some_and(|v| v.as_bytes() == GRPC_UNAUTHENTICATED)
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Default,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting { wait, pending } => {
                    let credential = match ready!(wait.poll(cx)) {
                        Ok(credential) => credential,
                        Err(error) => {
                            tracing::debug!(target: "meshx_auth", %error, "request not sent: no valid token");
                            return Poll::Ready(Err(error.into()));
                        }
                    };
                    let Some(pending) = pending.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let Pending {
                        shared,
                        mut request,
                        mut service,
                        replay_body,
                        retry,
                    } = *pending;
                    let generation = authorize(&mut request, &credential, &shared.org);
                    if let (Some(generation), true) = (generation, retry) {
                        *this.generation = generation;
                        *this.handle = Some(local::handle(&shared));
                    }
                    let replay = replay_body.filter(|_| this.handle.is_some());
                    let head = replay.as_ref().map(|_| copy_head(&request));
                    let future = service.call(request);
                    if let (Some(head), Some(body)) = (head, replay) {
                        *this.replay = Some(Replay {
                            head,
                            body,
                            service,
                        });
                    }
                    this.state.set(State::Calling { future });
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if !is_unauthorized(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    // The 401 is ours to handle only when we added the token, and only while
                    // somebody still holds the MeshxAuth.
                    let Some(shared) = this.handle.as_ref().and_then(|h| h.shared()) else {
                        return Poll::Ready(Ok(response));
                    };
                    tracing::debug!(
                        target: "meshx_auth",
                        generation = *this.generation,
                        status = response.status().as_u16(),
                        replayable = this.replay.is_some(),
                        "unauthorized: waiting for a fresh token"
                    );
                    let wait = WaitForToken::new(shared, *this.generation);
                    this.state.set(State::Refreshing {
                        wait,
                        response: Some(response),
                    });
                }
                StateProj::Refreshing { wait, response } => {
                    let fresh = ready!(wait.poll(cx));
                    let Some(response) = response.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let credential = match fresh {
                        Ok(credential) => credential,
                        Err(error) => {
                            tracing::warn!(
                                target: "meshx_auth",
                                %error,
                                "unauthorized and no fresh token: handing back the answer"
                            );
                            return Poll::Ready(Ok(response));
                        }
                    };
                    let Some(replay) = this.replay.take() else {
                        // The body cannot be sent again; the next request carries the new token.
                        tracing::debug!(
                            target: "meshx_auth",
                            "unauthorized; token refreshed, but the body cannot be replayed: handing back the answer"
                        );
                        return Poll::Ready(Ok(response));
                    };
                    drop(response);
                    let Replay {
                        head,
                        body,
                        service,
                    } = replay;
                    let mut request = head.map(|()| body.into_body());
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, credential.authorization.clone());
                    if let Some(shared) = this.handle.as_ref().and_then(|h| h.shared()) {
                        shared.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(
                        target: "meshx_auth",
                        generation = credential.generation,
                        "retrying once with the fresh token"
                    );
                    *this.generation = credential.generation;
                    this.state.set(State::Replaying {
                        future: Box::pin(Oneshot::new(service, request)),
                    });
                }
                StateProj::Replaying { future } => {
                    let response = ready!(future.as_mut().poll(cx)).map_err(Into::into)?;
                    if is_unauthorized(&response)
                        && let Some(shared) = this.handle.as_ref().and_then(|h| h.shared())
                    {
                        // A fresh token did not help: the resource refuses whatever the token.
                        // Further logins on demand are spaced (see the refresher).
                        shared
                            .signals
                            .unhelpful
                            .fetch_max(*this.generation, Ordering::AcqRel);
                        tracing::debug!(
                            target: "meshx_auth",
                            "unauthorized again after a refresh: handing back the answer"
                        );
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

fn polled_after_completion() -> BoxError {
    "meshx-auth ResponseFuture polled after completion".into()
}
