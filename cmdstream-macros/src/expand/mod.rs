//! One generator per generated item; each reads only the model.

mod assertions;
mod client;
mod command_enum;
mod dispatch;
mod info;
mod trait_def;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::Receiver;

pub(crate) fn receiver(r: &Receiver) -> TokenStream {
    let trait_def = trait_def::expand(r);
    let info = info::expand(r);
    let command_enum = command_enum::expand(r);
    let dispatch = dispatch::expand(r);
    let client = client::expand(r);
    let assertions = assertions::expand(r);
    quote! {
        #trait_def
        #info
        #command_enum
        #dispatch
        #client
        #assertions
    }
}
