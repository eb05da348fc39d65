//! Organizations: `GET {api}/iam/organization/list`.

use crate::credential::Credential;
use crate::error::Error;
use crate::login::{join, read_capped};
use crate::shared::Shared;
use serde::Deserialize;

/// Largest organization list we read.
const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

/// A MeshX organization, as `GET {api}/iam/organization/list` describes it. The `x-org` header
/// takes its [`name`](Organization::name), not its identifier.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct Organization {
    /// The UUID identifier.
    pub identifier: String,
    /// The URN.
    #[serde(default)]
    pub urn: String,
    /// The name: the value of `x-org`.
    pub name: String,
    /// The name shown to people.
    #[serde(default)]
    pub display_name: String,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
    /// The owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// A system organization.
    #[serde(default)]
    pub is_system: bool,
}

impl Shared {
    /// `GET {api}/iam/organization/list`; a 401 gets one shared refresh and one more try, as
    /// requests through the layer do.
    pub(crate) async fn organizations(&self) -> Result<Vec<Organization>, Error> {
        let credential = self.fresh_credential(0).await?;
        if let Some(list) = self.fetch_organizations(&credential).await? {
            return Ok(list);
        }
        let fresh = self.fresh_credential(credential.generation).await?;
        drop(credential);
        self.fetch_organizations(&fresh).await?.ok_or_else(|| {
            Error::Api("GET iam/organization/list answered HTTP 401 with a fresh token".into())
        })
    }

    /// `Ok(None)`: the API answered 401.
    async fn fetch_organizations(
        &self,
        credential: &Credential,
    ) -> Result<Option<Vec<Organization>>, Error> {
        let url = join(&self.api_url, "iam/organization/list");
        let request = self
            .http
            .get(url.clone())
            .header(
                http::header::AUTHORIZATION,
                credential.authorization.clone(),
            )
            .header(crate::X_ORG, self.org.clone())
            .header(http::header::ACCEPT, "application/json");
        let fetch = async {
            let mut response = request.send().await.map_err(Error::transport)?;
            let status = response.status();
            if status == http::StatusCode::UNAUTHORIZED {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(Error::Api(format!(
                    "GET {url} answered HTTP {}",
                    status.as_u16()
                )));
            }
            let Some(bytes) = read_capped(&mut response, MAX_LIST_BYTES)
                .await
                .map_err(Error::transport)?
            else {
                return Err(Error::Api(format!(
                    "the organization list is larger than {MAX_LIST_BYTES} bytes"
                )));
            };
            parse_list(&bytes).map(Some)
        };
        match tokio::time::timeout(self.timing.login_timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(Error::Api(format!(
                "GET {url} timed out after {:?}",
                self.timing.login_timeout
            ))),
        }
    }
}

/// The list, as a bare array or wrapped in an object (`{"items": [...]}`, `{"data": [...]}`,
/// `{"organizations": [...]}`).
fn parse_list(bytes: &[u8]) -> Result<Vec<Organization>, Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Bare(Vec<Organization>),
        Wrapped {
            #[serde(alias = "data", alias = "organizations", alias = "results")]
            items: Vec<Organization>,
        },
    }
    match serde_json::from_slice::<List>(bytes) {
        Ok(List::Bare(items) | List::Wrapped { items }) => Ok(items),
        Err(_) => Err(Error::Api(
            "the organization list is not a JSON list of organizations".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bare_and_wrapped_lists() {
        let one = r#"{"identifier":"3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b","urn":"urn:meshx:org:acme",
            "name":"acme","display_name":"Acme","description":null,"owner":"alice","is_system":false}"#;
        let bare = parse_list(format!("[{one}]").as_bytes()).unwrap();
        assert_eq!(bare[0].name, "acme");
        let wrapped = parse_list(format!(r#"{{"items":[{one}]}}"#).as_bytes()).unwrap();
        assert_eq!(wrapped, bare);
        assert!(parse_list(b"<html>").is_err());
    }
}
