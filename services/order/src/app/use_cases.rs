//! Placing, reading and cancelling orders, and the sweeper.
//!
//! Placement follows docs/design.md §2 step by step: look the user up,
//! record the order `pending` together with the idempotency key, charge,
//! settle. Each step is its own short transaction; what ties them together
//! across crashes is the order row itself (still `pending`) and the key's
//! lease. The use cases decide every transition, the event it announces
//! and the answer a key keeps; the store only writes them.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::instrument;
use twinshop_contracts::events::{Envelope, OrderCancelled, OrderConfirmed, OrderRejected};
use twinshop_platform::{
    idempotency::{Held, IdempotencyKey, Repeat},
    pagination::{Page, PageRequest},
};
use uuid::Uuid;

use super::ports::{CreateError, GatewayError, OrderRepository, PaymentGateway, Transition, UserDirectory, Written};
use crate::domain::{ConsistencyMode, NotCancellable, Order, OrderRequest, OrderStatus, Product, ShipTo, price};

/// Placement tuning.
#[derive(Debug, Clone, Copy)]
pub struct PlacementSettings {
    pub mode: ConsistencyMode,
    /// How long a request's hold on its idempotency key lasts without
    /// renewal. The request renews it while it works, so this bounds how
    /// long a retry waits after the holder died (not how long a placement
    /// may take).
    pub key_lease: Duration,
    /// How long an order may stay `pending` before the sweeper settles it
    /// (the payment deadline plus a margin).
    pub pending_grace: Duration,
}

/// The first answer to a placement, as its idempotency key keeps it: a
/// typed value (the HTTP edge renders it, the same way on every replay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Placement {
    /// 201 with the order as it was (confirmed, rejected, or pending in
    /// `available` mode).
    Created { order: Order },
    /// 503 `payment_unavailable`: strict mode, the order is `failed`.
    PaymentUnavailable { order: Order },
}

impl Placement {
    /// The answer a placement gives for the order as it now is.
    pub fn of(order: &Order) -> Self {
        match order.status {
            OrderStatus::Failed => Self::PaymentUnavailable { order: order.clone() },
            _ => Self::Created { order: order.clone() },
        }
    }
}

/// A successful answer to a placement.
#[derive(Debug, Clone)]
pub enum Placed {
    /// This request created (or finished) the order.
    Created(Order),
    /// The stored first answer for this key.
    Replayed(Placement),
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

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    NotCancellable(#[from] NotCancellable),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Renews a held key's lease until dropped.
struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// Now, to the microsecond Postgres keeps (so an order written and read
/// back compares equal).
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}

/// The event an order announces on reaching its state, if any.
fn announcement(order: &Order) -> anyhow::Result<Option<Envelope<Value>>> {
    let (order_id, user_id, total_cents) = (order.id, order.user_id, order.total_cents);
    let event = match order.status {
        OrderStatus::Confirmed => Envelope::new(OrderConfirmed { order_id, user_id, total_cents }).erase(),
        OrderStatus::Rejected => Envelope::new(OrderRejected {
            order_id,
            user_id,
            total_cents,
            reason: order.rejection_reason.map_or("", |r| r.as_str()).to_owned(),
        })
        .erase(),
        OrderStatus::Cancelled => Envelope::new(OrderCancelled { order_id, user_id, total_cents }).erase(),
        OrderStatus::Pending | OrderStatus::Failed => return Ok(None),
    };
    event.map(Some).context("serialising the event")
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
        // A key seen before decides first: replay, reuse, in use, resume.
        if let Some(key) = &key
            && let Some(found) = self.repo.find_key(user_id, key).await?
        {
            return self.repeat(user_id, key, found.repeat(&fingerprint)).await;
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
            void_status: None,
            created_at: now,
            updated_at: now,
        };
        tracing::Span::current().record("order_id", tracing::field::display(order.id));
        match self.repo.create(&order, key.as_ref().map(|k| (k, &fingerprint)), self.settings.key_lease).await {
            Ok(()) => {}
            Err(CreateError::KeyTaken) => {
                // A concurrent request with the same key recorded its order first.
                let key = key.as_ref().context("key conflict without a key")?;
                let found = self.repo.find_key(user_id, key).await?.context("the key vanished")?;
                return self.repeat(user_id, key, found.repeat(&fingerprint)).await;
            }
            Err(CreateError::Unexpected(e)) => return Err(e.into()),
        }

        // 3 and 4. Charge, then settle, holding the key meanwhile.
        let held = key.map(|key| Held { key, generation: 1 });
        let _renewal = held.as_ref().map(|h| self.keep_holding(user_id, h.clone()));
        self.charge_and_settle(order, held.as_ref()).await
    }

    /// Renews the lease of `held` until the returned guard is dropped (the
    /// request finished, or died with its process: then the lease runs out
    /// within `key_lease` and a retry may take over).
    fn keep_holding(&self, user_id: Uuid, held: Held) -> Renewal {
        let (repo, lease) = (self.repo.clone(), self.settings.key_lease);
        Renewal(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 4).await;
                match repo.renew_key(user_id, &held, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(generation = held.generation, "lost the hold on an idempotency key");
                        break;
                    }
                    Err(err) => tracing::warn!(error = format!("{err:#}"), "renewing an idempotency lease failed"),
                }
            }
        }))
    }

    /// The answer for a request whose write was fenced off its key.
    async fn fenced(&self, user_id: Uuid, held: Option<&Held>) -> Result<Placed, PlaceError> {
        match held {
            Some(held) => self.as_it_stands(user_id, &held.key).await,
            None => Err(PlaceError::Unexpected(anyhow::anyhow!("fenced without a key"))),
        }
    }

    /// What the key says now, for a request that lost its hold on it.
    async fn as_it_stands(&self, user_id: Uuid, key: &IdempotencyKey) -> Result<Placed, PlaceError> {
        match self.repo.find_key(user_id, key).await?.and_then(|found| found.outcome) {
            Some(answer) => Ok(Placed::Replayed(answer)),
            None => Err(PlaceError::KeyInUse),
        }
    }

    /// A request repeating a key: replay, refuse, or take over.
    async fn repeat(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        repeat: Repeat<Placement>,
    ) -> Result<Placed, PlaceError> {
        let order_id = match repeat {
            Repeat::Replay(answer) => return Ok(Placed::Replayed(answer)),
            Repeat::Reused => return Err(PlaceError::KeyReused),
            Repeat::InUse => return Err(PlaceError::KeyInUse),
            Repeat::Abandoned { resource_id } => resource_id.context("a placement key without its order")?,
        };
        let Some(held) = self.repo.take_over_key(user_id, key, self.settings.key_lease).await? else {
            return Err(PlaceError::KeyInUse);
        };
        // The request that held the key stopped: carry on with the same order.
        tracing::info!(order_id = %order_id, generation = held.generation, "taking over an abandoned placement");
        let _renewal = self.keep_holding(user_id, held.clone());
        let order = self.repo.find(user_id, order_id).await?.context("the keyed order vanished")?;
        if order.status == OrderStatus::Pending {
            return self.charge_and_settle(order, Some(&held)).await;
        }
        if !self.repo.answer_key(user_id, &held, &Placement::of(&order)).await? {
            return self.as_it_stands(user_id, key).await;
        }
        Ok(Placed::Created(order))
    }

    /// Moves `order` to `next`, announcing it and answering `held`'s key;
    /// `Ok(None)` if the request lost its hold on the key (nothing written),
    /// else the order as it now is (someone else's state if they moved it
    /// first).
    async fn write(&self, order: &Order, next: Order, held: Option<&Held>) -> anyhow::Result<Option<Order>> {
        let answer = held.map(|h| (h, Placement::of(&next)));
        let transition = Transition {
            from: order.status,
            next: &next,
            event: announcement(&next)?,
            answer: answer.as_ref().map(|(h, a)| (*h, a)),
        };
        match self.repo.transition(transition).await? {
            Written::Applied => Ok(Some(next)),
            Written::Fenced => Ok(None),
            Written::Lost(current) => {
                let current = *current;
                // Settled by someone else (the sweeper, a retry): the key's
                // answer is the order as they left it.
                if let Some(held) = held
                    && !self.repo.answer_key(current.user_id, held, &Placement::of(&current)).await?
                {
                    return Ok(None);
                }
                Ok(Some(current))
            }
        }
    }

    async fn charge_and_settle(&self, order: Order, held: Option<&Held>) -> Result<Placed, PlaceError> {
        let settled = match self.payments.charge(order.id, order.user_id, order.total_cents).await {
            Ok(outcome) => {
                let next = order.settle(outcome, now_micros()).context("settling")?;
                match self.write(&order, next, held).await? {
                    Some(order) => order,
                    None => return self.fenced(order.user_id, held).await,
                }
            }
            Err(GatewayError::Unavailable(err)) => {
                tracing::warn!(error = format!("{err:#}"), mode = ?self.settings.mode, "payment unavailable");
                match self.settings.mode {
                    ConsistencyMode::Strict => {
                        let Some(order) =
                            self.write(&order, order.fail(now_micros()).context("failing")?, held).await?
                        else {
                            return self.fenced(order.user_id, held).await;
                        };
                        if order.status == OrderStatus::Failed {
                            return Err(PlaceError::PaymentUnavailable(Box::new(order)));
                        }
                        order
                    }
                    ConsistencyMode::Available => {
                        if let Some(held) = held
                            && !self.repo.answer_key(order.user_id, held, &Placement::of(&order)).await?
                        {
                            return self.fenced(order.user_id, Some(held)).await;
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

    /// Cancels a confirmed order; the refund follows asynchronously (the
    /// payment area refunds on `order.cancelled`).
    #[instrument(name = "order.cancel", skip_all, fields(user_id = %user_id, order_id = %order_id))]
    pub async fn cancel(&self, user_id: Uuid, order_id: Uuid) -> Result<Order, CancelError> {
        let order = self.repo.find(user_id, order_id).await?.ok_or(CancelError::NotFound)?;
        let Some(next) = order.cancel(now_micros())? else {
            return Ok(order);
        };
        let current = self.write(&order, next, None).await?.context("fenced without a key")?;
        // Lost a race: cancelled meanwhile is the same answer; anything else
        // cannot happen to a confirmed order, but is answered truthfully.
        current.cancel(current.updated_at)?;
        Ok(current)
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
                    let next = order.settle(outcome, now_micros()).context("settling")?;
                    let order = self.write(&order, next, None).await?.context("fenced without a key")?;
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
}
