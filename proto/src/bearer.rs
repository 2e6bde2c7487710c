//! The client side of bearer-token auth, shared by the worker and the cli:
//! an interceptor that adds `authorization: Bearer <token>` to every call.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Sends the token when there is one, nothing otherwise.
#[derive(Clone, Debug, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Fails when the token has characters a header cannot carry.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        token
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .map(Self)
            .map_err(|_| "the token has characters a header cannot carry".to_string())
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_sent_only_with_a_token() {
        let mut with = Bearer::new(Some("s3cret")).unwrap();
        let request = with.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        let mut without = Bearer::new(None).unwrap();
        assert!(
            without
                .call(Request::new(()))
                .unwrap()
                .metadata()
                .is_empty()
        );
        assert!(Bearer::new(Some("line\nbreak")).is_err());
    }
}
