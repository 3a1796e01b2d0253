//! Procedural macros for leakwatch. Use them through `leakwatch::tracked`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Fields, ItemStruct, parse_macro_input};

/// Counts every instance of the struct it is placed on. See `leakwatch::tracked`.
#[proc_macro_attribute]
pub fn tracked(attr: TokenStream, item: TokenStream) -> TokenStream {
    let _ = attr;
    let mut s = parse_macro_input!(item as ItemStruct);
    let ident = s.ident.clone();
    let name = ident.to_string();
    if let Fields::Named(f) = &mut s.fields {
        f.named.push(syn::parse_quote!(__tracked: ::leakwatch::__private::Tracker<Self>));
    }
    let (ig, tg, wc) = s.generics.split_for_impl();
    quote! {
        #s
        impl #ig ::leakwatch::__private::Tracked for #ident #tg #wc {
            fn __leakwatch_stats() -> &'static ::leakwatch::__private::TypeStats {
                static STATS: ::leakwatch::__private::TypeStats =
                    ::leakwatch::__private::TypeStats::new(#name, ::core::mem::size_of::<#ident>());
                &STATS
            }
        }
    }
    .into()
}
