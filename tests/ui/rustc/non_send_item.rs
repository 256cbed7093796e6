use std::rc::Rc;

use cmdstream::Stream;

#[cmdstream::receiver]
pub trait Files {
    async fn list(&self) -> impl Stream<Item = Rc<String>> + Send;
}

fn main() {}
