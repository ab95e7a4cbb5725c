//! The user area's side of its internal contract
//! (`twinshop_contracts::internal::UserLookup`): the lookup other areas
//! use, mapped from the domain in this one place. The host serves it over
//! HTTP (`GET /internal/v1/users/{id}`) in the microservices and hands it
//! to the order area directly in the monolith.

use std::time::Duration;

use twinshop_contracts::internal::{CallError, PostalAddress, UserCard, UserLookup};
use uuid::Uuid;

use crate::{
    app::{LookupError, UserService},
    domain::UserId,
};

/// [`UserService`] as the contract's provider.
#[derive(Debug, Clone)]
pub struct LookupProvider(pub UserService);

#[async_trait::async_trait]
impl UserLookup for LookupProvider {
    async fn lookup(&self, user_id: Uuid, _: Duration) -> Result<Option<UserCard>, CallError> {
        match self.0.lookup(UserId::from_uuid(user_id)).await {
            Ok(summary) => Ok(Some(UserCard {
                id: summary.id.as_uuid(),
                name: summary.name.into_string(),
                address: summary.address.map(|a| PostalAddress {
                    line1: a.line1().to_owned(),
                    city: a.city().to_owned(),
                    postal_code: a.postal_code().to_owned(),
                    country: a.country().as_str().to_owned(),
                }),
            })),
            Err(LookupError::NotFound) => Ok(None),
            Err(LookupError::Unexpected(e)) => Err(CallError::Unavailable(e)),
        }
    }
}
