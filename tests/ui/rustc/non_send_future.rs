use std::rc::Rc;

#[cmdstream::receiver]
pub trait Calc {
    async fn add(&self, a: i64, b: i64) -> i64;
}

struct Local;

impl Calc for Local {
    async fn add(&self, a: i64, b: i64) -> i64 {
        let not_send = Rc::new(a);
        tokio::task::yield_now().await;
        *not_send + b
    }
}

fn main() {}
