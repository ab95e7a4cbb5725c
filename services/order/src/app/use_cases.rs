//! Placing, reading and cancelling orders, and the sweeper.
//!
//! Placement follows docs/design.md §2 step by step: look the user up, record the
//! order `pending` together with the idempotency key, charge, settle. Each
//! step is its own short transaction; what ties them together across
//! crashes is the order row itself (still `pending`) and the key's lease.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use time::OffsetDateTime;
use tracing::instrument;
use twinshop_platform::{
    idempotency::IdempotencyKey,
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

use super::{
    ports::{CancelError, CreateError, GatewayError, KeyRecord, OrderRepository, PaymentGateway, UserDirectory},
    views,
};
use crate::domain::{ConsistencyMode, Order, OrderRequest, OrderStatus, Product, ShipTo, price};

/// Placement tuning.
#[derive(Debug, Clone, Copy)]
pub struct PlacementSettings {
    pub mode: ConsistencyMode,
    /// How long a request holds its idempotency key before another request
    /// with the same key may take over (longer than a whole placement).
    pub key_lease: Duration,
    /// How long an order may stay `pending` before the sweeper settles it
    /// (the payment deadline plus a margin).
    pub pending_grace: Duration,
}

/// A successful answer to a placement.
#[derive(Debug, Clone)]
pub enum Placed {
    /// 201 with this order (confirmed, rejected, or pending in `available`
    /// mode).
    Created(Order),
    /// The stored first answer for this key: status and order snapshot.
    Replayed { status: u16, snapshot: Value },
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<String>),
    #[error("the user has no shipping address")]
    AddressRequired,
    /// The token's user does not exist (any more).
    #[error("unknown user")]
    UnknownUser,
    #[error("the user directory is unavailable")]
    DependencyUnavailable,
    /// Strict mode: payment could not be reached; the order is `failed`.
    #[error("payment unavailable")]
    PaymentUnavailable(Box<Order>),
    #[error("idempotency key reused with another request")]
    KeyReused,
    #[error("idempotency key in use by a request in progress")]
    KeyInUse,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct OrderService {
    repo: Arc<dyn OrderRepository>,
    users: Arc<dyn UserDirectory>,
    payments: Arc<dyn PaymentGateway>,
    settings: PlacementSettings,
}

impl std::fmt::Debug for OrderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderService").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}

impl OrderService {
    pub fn new(
        repo: Arc<dyn OrderRepository>,
        users: Arc<dyn UserDirectory>,
        payments: Arc<dyn PaymentGateway>,
        settings: PlacementSettings,
    ) -> Self {
        Self { repo, users, payments, settings }
    }

    pub async fn catalog(&self) -> anyhow::Result<Vec<Product>> {
        self.repo.catalog().await
    }

    /// Places an order; see the module docs for the steps.
    #[instrument(name = "order.place", skip_all, fields(user_id = %user_id, order_id, status))]
    pub async fn place(
        &self,
        user_id: Uuid,
        key: Option<IdempotencyKey>,
        fingerprint: Value,
        request: OrderRequest,
    ) -> Result<Placed, PlaceError> {
        // A key seen before decides first: replay, reuse or in use.
        if let Some(key) = &key
            && let Some(record) = self.repo.find_key(user_id, key).await?
        {
            return self.resume(user_id, key, &fingerprint, record).await;
        }
        let catalog = self.repo.catalog().await?;
        let (items, total_cents) = price(&request, &catalog).map_err(|e| match e {
            crate::domain::OrderRequestError::UnknownProducts(ids) => PlaceError::UnknownProducts(ids),
        })?;

        // 1. Who and where to ship: from the user area.
        let recipient = self.users.recipient(user_id).await.map_err(|e| {
            tracing::warn!(error = %e, "user lookup failed");
            PlaceError::DependencyUnavailable
        })?;
        let recipient = recipient.ok_or(PlaceError::UnknownUser)?;
        let address = recipient.address.ok_or(PlaceError::AddressRequired)?;

        // 2. Record it pending, with the key, in one transaction.
        let now = now_micros();
        let order = Order {
            id: Uuid::now_v7(),
            user_id,
            status: OrderStatus::Pending,
            items,
            total_cents,
            ship_to: ShipTo { name: recipient.name, address },
            rejection_reason: None,
            refund_status: None,
            created_at: now,
            updated_at: now,
        };
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        match self.repo.create_pending(&order, key.as_ref().map(|k| (k, &fingerprint)), self.settings.key_lease).await {
            Ok(()) => {}
            Err(CreateError::KeyTaken) => {
                // A concurrent request with the same key recorded its order first.
                let key = key.as_ref().ok_or_else(|| anyhow::anyhow!("key conflict without a key"))?;
                let record = self.repo.find_key(user_id, key).await?.ok_or_else(|| anyhow::anyhow!("key vanished"))?;
                return self.resume(user_id, key, &fingerprint, record).await;
            }
            Err(CreateError::Unexpected(e)) => return Err(e.into()),
        }

        // 3 and 4. Charge, then settle.
        self.charge_and_settle(order, key.as_ref()).await
    }

    /// A request with a key seen before: replay, refuse, or take over.
    async fn resume(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        fingerprint: &Value,
        record: KeyRecord,
    ) -> Result<Placed, PlaceError> {
        if record.fingerprint != *fingerprint {
            return Err(PlaceError::KeyReused);
        }
        if let Some((status, snapshot)) = record.response {
            return Ok(Placed::Replayed { status, snapshot });
        }
        if !record.lease_expired || !self.repo.take_over_key(user_id, key, self.settings.key_lease).await? {
            return Err(PlaceError::KeyInUse);
        }
        // The request that held the key died: carry on with the same order.
        tracing::info!(order_id = %record.order_id, "taking over an abandoned placement");
        let order =
            self.repo.find(user_id, record.order_id).await?.ok_or_else(|| anyhow::anyhow!("keyed order vanished"))?;
        if order.status == OrderStatus::Pending {
            return self.charge_and_settle(order, Some(key)).await;
        }
        self.repo.complete_key(&order, key).await?;
        Ok(Placed::Created(order))
    }

    async fn charge_and_settle(&self, order: Order, key: Option<&IdempotencyKey>) -> Result<Placed, PlaceError> {
        let settled = match self.payments.charge(order.id, order.user_id, order.total_cents).await {
            Ok(outcome) => self.repo.settle(order.id, outcome, key).await?,
            Err(GatewayError::Unavailable(err)) => {
                tracing::warn!(error = format!("{err:#}"), mode = ?self.settings.mode, "payment unavailable");
                match self.settings.mode {
                    ConsistencyMode::Strict => {
                        let order = self.repo.fail(order.id, key).await?;
                        if order.status == OrderStatus::Failed {
                            return Err(PlaceError::PaymentUnavailable(Box::new(order)));
                        }
                        order
                    }
                    ConsistencyMode::Available => {
                        if let Some(key) = key {
                            self.repo.complete_key(&order, key).await?;
                        }
                        order
                    }
                }
            }
            Err(GatewayError::Refused(err)) => return Err(PlaceError::Unexpected(err.context("charge refused"))),
        };
        tracing::Span::current().record("status", settled.status.as_str());
        Ok(Placed::Created(settled))
    }

    #[instrument(name = "order.get", skip_all, fields(user_id = %user_id, order_id = %order_id))]
    pub async fn get(&self, user_id: Uuid, order_id: Uuid) -> anyhow::Result<Option<Order>> {
        self.repo.find(user_id, order_id).await
    }

    #[instrument(name = "order.list", skip_all, fields(user_id = %user_id))]
    pub async fn list(&self, user_id: Uuid, page: PageRequest) -> anyhow::Result<Page<Order>> {
        self.repo.list(user_id, page).await
    }

    /// Cancels a confirmed order; the refund follows asynchronously.
    #[instrument(name = "order.cancel", skip_all, fields(user_id = %user_id, order_id = %order_id))]
    pub async fn cancel(&self, user_id: Uuid, order_id: Uuid) -> Result<Order, CancelError> {
        self.repo.cancel(user_id, order_id).await
    }

    /// The effect of `payment.refunded`.
    pub async fn refund_arrived(&self, consumer: &str, event_id: Uuid, order_id: Uuid) -> anyhow::Result<()> {
        self.repo.mark_refunded(consumer, event_id, order_id).await
    }

    /// One sweeper pass: settles pending orders nobody is working on (by
    /// re-sending Charge: the replayed outcome settles them) and re-sends
    /// owed voids until answered. Safe with several replicas: rows are
    /// claimed with `SKIP LOCKED` and every step is idempotent.
    #[instrument(name = "order.sweep", skip_all, fields(settled, voided))]
    pub async fn sweep(&self) -> anyhow::Result<(usize, usize)> {
        let mut settled = 0;
        for order in self.repo.claim_stale_pending(self.settings.pending_grace, 20).await? {
            match self.payments.charge(order.id, order.user_id, order.total_cents).await {
                Ok(outcome) => {
                    let order = self.repo.settle(order.id, outcome, None).await?;
                    tracing::info!(order_id = %order.id, status = order.status.as_str(), "sweeper settled a pending order");
                    settled += 1;
                }
                Err(err) => tracing::warn!(order_id = %order.id, error = %err, "sweeper could not charge yet"),
            }
        }
        let mut voided = 0;
        for order_id in self.repo.claim_owed_voids(Duration::from_secs(1), 20).await? {
            match self.payments.void(order_id).await {
                Ok(()) => {
                    self.repo.void_done(order_id).await?;
                    voided += 1;
                }
                Err(err) => tracing::warn!(order_id = %order_id, error = %err, "sweeper could not void yet"),
            }
        }
        tracing::Span::current().record("settled", settled).record("voided", voided);
        Ok((settled, voided))
    }

    /// Renders an order as the API shows it.
    pub fn snapshot(order: &Order) -> Value {
        views::order_json(order)
    }
}
