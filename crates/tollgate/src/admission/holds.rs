//! What a call reserved at admission: rate-limit and budget holds. Each
//! hold is a value with a `Drop` that gives back what it took, so an error,
//! a timeout, a cancelled stream or a panic can never leak a reservation.

use crate::budgets::BudgetHold;
use crate::limits::RateHold;
use crate::pricing::Price;
use crate::wire::openai::Usage;

/// What a request reserved at admission.
#[derive(Default)]
pub struct Holds {
    pub rate: Vec<RateHold>,
    pub budget: Vec<BudgetHold>,
}

impl Holds {
    pub fn is_empty(&self) -> bool {
        self.rate.is_empty() && self.budget.is_empty()
    }

    pub fn settle(&mut self, usage: Option<&Usage>, price: Option<Price>) {
        for h in &mut self.rate {
            h.settle(usage);
        }
        for h in &mut self.budget {
            h.settle_at(usage, price);
        }
    }
}
