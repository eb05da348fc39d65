//! [`MeshxAuthService`]: adds the credentials to each request.

use crate::credential::Credential;
use crate::future::{ResponseFuture, WaitForToken};
use crate::local;
use crate::replay::{EmptyBodiesOnly, ReplayBody, Replayable};
use crate::shared::{EXPIRED, Shared};
use http::header::{AUTHORIZATION, Entry};
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::Body;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tower::BoxError;
use tower_service::Service;

/// The `x-org` header.
pub const X_ORG: HeaderName = HeaderName::from_static("x-org");

/// The middleware service built by [`MeshxAuthLayer`](crate::MeshxAuthLayer).
///
/// Adds `Authorization: Bearer <token>` and `x-org: <organization>` to each request that does not
/// carry them already, and, when the answer is a 401 (or gRPC UNAUTHENTICATED) for the token it
/// added, waits for the one shared refresh and sends the request once more if its body can be
/// replayed (see [`ReplayBody`]).
pub struct MeshxAuthService<S, P = EmptyBodiesOnly> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: P,
    pub(crate) retry: bool,
}

impl<S: Clone, P: Clone> Clone for MeshxAuthService<S, P> {
    fn clone(&self) -> Self {
        MeshxAuthService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            retry: self.retry,
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for MeshxAuthService<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshxAuthService")
            .field("inner", &self.inner)
            .field("auth", &self.shared)
            .field("retry_on_unauthorized", &self.retry)
            .finish()
    }
}

impl<S, P> MeshxAuthService<S, P> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// A request extension that sends this request on behalf of another organization than the
/// default one (an `x-org` header set on the request wins over both).
///
/// ```
/// let org = meshx_auth::RequestOrg::new("other-org")?;
/// let mut request = http::Request::get("https://api.meshx.foundation/api/things").body(())?;
/// request.extensions_mut().insert(org);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrg(HeaderValue);

impl RequestOrg {
    /// The organization *name*; an error if it is empty or not a valid header value.
    pub fn new(name: &str) -> Result<Self, crate::Error> {
        let name = name.trim();
        if name.is_empty() {
            return Err(crate::Error::Config(
                "the organization name is empty".into(),
            ));
        }
        HeaderValue::from_str(name).map(RequestOrg).map_err(|_| {
            crate::Error::Config("the organization name is not a valid header value".into())
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// Inserts the headers a request lacks; returns the generation of the token it inserted (`None`
/// when the caller brought its own `Authorization`: then a 401 is not ours to handle).
#[inline]
pub(crate) fn authorize<B>(
    request: &mut Request<B>,
    credential: &Credential,
    org: &HeaderValue,
) -> Option<u64> {
    insert_headers(request, credential.authorization.clone(), org).then_some(credential.generation)
}

/// Inserts `Authorization` and `x-org` where the request has none (a [`RequestOrg`] extension
/// chooses the organization); true when the `Authorization` is ours.
#[inline]
pub(crate) fn insert_headers<B>(
    request: &mut Request<B>,
    authorization: HeaderValue,
    org: &HeaderValue,
) -> bool {
    let own_org = request
        .extensions()
        .get::<RequestOrg>()
        .map(|RequestOrg(own)| own.clone());
    let headers = request.headers_mut();
    let ours = match headers.entry(AUTHORIZATION) {
        Entry::Vacant(slot) => {
            slot.insert(authorization);
            true
        }
        Entry::Occupied(_) => false,
    };
    if let Entry::Vacant(slot) = headers.entry(X_ORG) {
        slot.insert(own_org.unwrap_or_else(|| org.clone()));
    }
    ours
}

/// A copy of a request's head (method, URI, version, headers, extensions), for a replay.
pub(crate) fn copy_head<B>(request: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    *head.extensions_mut() = request.extensions().clone();
    head
}

/// The slow path: the token has expired (or was withdrawn).
#[cold]
fn without_token<S, P, B, RB>(
    this: &mut MeshxAuthService<S, P>,
    mut request: Request<B>,
) -> ResponseFuture<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    B: Body + Default,
    P: ReplayBody<B>,
{
    let credential = this.shared.cell.load_full();
    if request.headers().contains_key(AUTHORIZATION) {
        // The caller's own token: none of ours is needed.
        insert_headers(
            &mut request,
            credential.authorization.clone(),
            &this.shared.org,
        );
        return ResponseFuture::passthrough(this.inner.call(request));
    }
    // Wait (bounded by the login timeout) for the refresher: for a token newer than the
    // expired one, or the current one if it was replaced in the meantime.
    let after = if credential.is_expired() {
        credential.generation
    } else {
        credential.generation - 1
    };
    let replay_body = if this.retry {
        Replayable::prepare(&this.policy, request.body_mut())
    } else {
        None
    };
    let clone = this.inner.clone();
    let service = mem::replace(&mut this.inner, clone);
    ResponseFuture::wait(
        WaitForToken::new(this.shared.clone(), after),
        request,
        service,
        replay_body,
        this.shared.clone(),
        this.retry,
    )
}

impl<S, P, B, RB> Service<Request<B>> for MeshxAuthService<S, P>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Body + Default + Send + 'static,
    P: ReplayBody<B>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, RB>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(scope) = &self.shared.scope
            && !scope.allows(request.uri())
        {
            // Not a MeshX host: no credentials, no retry.
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        // One plain atomic load tells whether this thread's copy of the token is current.
        let state = self.shared.state.load(Ordering::Acquire);
        let fast = if state & EXPIRED == 0 {
            local::authorization(&self.shared, state >> 1, self.retry)
        } else {
            None
        };
        let Some((authorization, generation, handle)) = fast else {
            return without_token(self, request);
        };
        let ours = insert_headers(&mut request, authorization, &self.shared.org);
        let (true, Some(handle)) = (ours, handle) else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        match Replayable::prepare(&self.policy, request.body_mut()) {
            Some(body) => {
                let head = copy_head(&request);
                let clone = self.inner.clone();
                let mut service = mem::replace(&mut self.inner, clone);
                let future = service.call(request);
                ResponseFuture::replayable(future, handle, generation, head, body, service)
            }
            None => ResponseFuture::refresh_only(self.inner.call(request), handle, generation),
        }
    }
}
