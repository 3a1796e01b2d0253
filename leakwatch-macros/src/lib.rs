//! Procedural macros for [leakwatch](https://docs.rs/leakwatch). Use them through
//! `leakwatch::tracked`; this crate is an implementation detail and need not be a dependency
//! of your crate.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Field, Fields, GenericParam, Generics, Ident, LitStr, Path,
    Token, Type, TypeParamBound, WherePredicate, parse_quote,
};

/// Name of the injected field. The E0063 error for a struct literal that lacks it is the only
/// message rustc prints there, and it can't be customised (no `#[diagnostic]` attribute covers
/// missing fields), so the name itself spells out what to write:
/// `missing field `__tracked_Default_default`` reads as "add `__tracked_Default_default:
/// Default::default()`".
const FIELD: &str = "__tracked_Default_default";

/// Counts every instance of a struct: created, dropped, live, peak live and approximate live
/// bytes, in per-thread counters (no lock, no shared write on the hot path).
///
/// ```
/// #[leakwatch::tracked] // first, above the derives
/// #[derive(Debug, Clone, PartialEq)]
/// struct Watch {
///     user: u32,
/// }
///
/// let w = Watch { user: 1, __tracked_Default_default: Default::default() };
/// let w2 = w.clone(); // a clone is a new instance
/// assert_eq!(leakwatch::counts::<Watch>().live, 2);
/// assert_eq!(format!("{w:?}"), "Watch { user: 1 }"); // Debug is unchanged
/// assert_eq!(w, w2);
/// drop((w, w2));
/// let c = leakwatch::counts::<Watch>();
/// assert_eq!((c.created, c.dropped, c.live), (2, 2, 0));
/// ```
///
/// # The one change at construction sites
///
/// The attribute adds a zero-sized field, so every struct literal must give it a value:
///
/// ```text
/// __tracked_Default_default: Default::default()
/// ```
///
/// (or `..Default::default()` if the struct implements `Default`). Forgetting it fails to
/// compile with a message that names what to write:
///
/// ```text
/// error[E0063]: missing field `__tracked_Default_default` in initializer of `Watch`
/// ```
///
/// Patterns that destructure the struct need a `..` rest (or the field by name). Nothing else
/// changes: the field is zero-sized and alignment 1, so `size_of` is the same as without
/// the attribute; it is `#[doc(hidden)]` and has the struct's visibility, so wherever you could
/// write a literal before, you still can.
///
/// # What it generates
///
/// ```text
/// #[leakwatch::tracked]
/// #[derive(Debug, Clone, Serialize)]
/// pub struct Watch { user: u32 }
/// ```
///
/// expands to (in module `my_crate::presence`):
///
/// ```text
/// #[derive(Clone, Serialize)]
/// pub struct Watch {
///     #[doc(hidden)]
///     #[allow(non_snake_case)]
///     #[serde(skip)]                      // only when Serialize/Deserialize is derived
///     pub __tracked_Default_default: ::leakwatch::__private::Tracker<Watch>,
///     user: u32,
/// }
///
/// impl ::leakwatch::__private::Tracked for Watch {
///     fn __leakwatch_stats() -> &'static ::leakwatch::__private::TypeStats {
///         // "my_crate::presence::Watch" with `::` turned into `.` at compile time
///         static STATS: TypeStats = TypeStats::new("my_crate.presence.Watch", size_of::<Watch>());
///         &STATS
///     }
/// }
///
/// // `derive(Debug)` is replaced by this impl, which leaves the tracker out, so the output is
/// // exactly what the derive printed before the attribute was added.
/// impl ::core::fmt::Debug for Watch { /* f.debug_struct("Watch").field("user", &&self.user) */ }
/// ```
///
/// [`Tracker`](https://docs.rs/leakwatch/latest/leakwatch/struct.Tracker.html) counts a creation
/// in `Default::default()` and `Clone::clone()` and a drop in `Drop`, so a clone is a new
/// instance and a value may be dropped on any thread (each thread counts what it did;
/// `live = Σcreated − Σdropped`). `PartialEq`, `Ord` and `Hash` treat all trackers as equal, so
/// derived comparisons and hashes are unchanged.
///
/// # Series name
///
/// By default the type's path with `::` replaced by `.`, e.g. `my_crate.presence.Watch`
/// (Graphite-friendly). Override it with `#[tracked(name = "presence.Watch")]`.
///
/// # Derives: write `#[tracked]` first
///
/// An attribute only sees the attributes written *below* it. Derives below `#[tracked]` see the
/// injected field and work: `Clone` and `Default` create counted trackers, serde's `Serialize`
/// and `Deserialize` get `#[serde(skip)]` on the field (a deserialised value is a new, counted
/// instance), `Debug` output leaves the field out. Derives written *above* `#[tracked]` expand
/// on the struct as it was before the field was added and `#[tracked]` cannot see them: `Debug`,
/// `PartialEq`, `Hash`, `Serialize` still work, but `Clone`, `Default` and `Deserialize` fail
/// with `E0063 missing field `__tracked_Default_default`` pointing at the derive. Move them below.
///
/// # Tuple and generic structs
///
/// * Tuple structs get the tracker as their **last** field: `struct Id(u64)` becomes
///   `struct Id(u64, Tracker<Id>)`, constructed as `Id(7, Default::default())`; the tracker is
///   field `.1` (index = number of fields you wrote). A one-field tuple struct that derives serde
///   also gets `#[serde(transparent)]` so it still (de)serialises as its inner value (in JSON,
///   identical to a newtype struct).
/// * Named structs get it as their **first** field, so a struct whose last field is unsized
///   still compiles (but unsizing coercions such as `Box<S<[u8; 4]>>` to `Box<S<[u8]>>` are not
///   available, because the tracker's type names `S<T>`).
/// * Generic structs: one series for all instantiations (`Cache<u8>` and `Cache<String>` are
///   both counted as `Cache`), because a `static` cannot depend on type parameters. Live bytes
///   are then summed per instance with each instantiation's own `size_of`; if a type parameter
///   is `?Sized`, live bytes are not reported.
/// * Structs generic only over lifetimes name themselves with `'static` in the tracker
///   (`Tracker<Holder<'static>>`), so borrowing rules stay those of the plain struct. With type
///   parameters the tracker names `S<'a, T>`, and because it has a `Drop` impl, what the struct
///   borrows must strictly outlive it (declare the referent before the value that holds it).
///
/// # Unsupported shapes (each a compile error that says what to do)
///
/// * enums and unions: track a struct that holds them, or put a `leakwatch::Token` in it;
/// * unit structs (`struct S;`): write `struct S {}` instead (construct as
///   `S { __tracked_Default_default: Default::default() }`);
/// * `Copy` types: a copy creates an instance without any code running, so it cannot be
///   counted; drop `Copy` (keep `Clone`) or count with a `leakwatch::Token`;
/// * tuple structs whose last field is unsized (`struct B(u32, [u8])`, or a `?Sized` type
///   parameter): the tracker would follow it; use named fields, where the tracker goes first;
/// * `#[repr(packed)]` structs deriving `Clone`, `PartialEq`, `PartialOrd`, `Ord` or `Hash`:
///   on a packed struct these derives copy each field out, and the tracker is not `Copy`;
///   implement them by hand. A packed struct without them works, `Debug` included.
///
/// # Peak
///
/// `peak` is *sampled*: the highest live count seen by any read (`leakwatch::counts`,
/// snapshots, the watchdog's ticks), not an exact high-water mark. A burst that comes and goes
/// between two reads is not seen. An exact peak needs work on every creation: a shared
/// `fetch_max` costs 2–3× on two threads, and even a per-thread running peak (exact for a type
/// used by one thread) measured 1.11–1.15× untracked against the 1.10× budget, so counting
/// stays at one relaxed load and one store per creation or drop.
#[proc_macro_attribute]
pub fn tracked(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Arguments of `#[tracked(...)]`.
#[derive(Default)]
struct Args {
    name: Option<LitStr>,
}

fn parse_args(attr: TokenStream2) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    "the series name must not be empty",
                ));
            }
            args.name = Some(lit);
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[tracked] argument; the only one is `name = \"series.name\"`, \
                 e.g. #[tracked(name = \"presence.Watch\")]",
            ))
        }
    });
    parser.parse2(attr)?;
    Ok(args)
}

/// What the derives (and `cfg_attr`-wrapped derives) on the struct ask for.
#[derive(Default)]
struct Derives {
    /// The span of a `Copy` derive, if any.
    copy: Option<Span>,
    /// The first derive that reads a packed struct's fields by copying them out, if any.
    copies_fields: Option<(Span, String)>,
    debug: bool,
    /// `cfg_attr` predicates under which serde derives apply; `None` entry = unconditional.
    serde: Vec<Option<TokenStream2>>,
}

fn last_ident(path: &Path) -> String {
    path.segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}

/// Whether a derive path names serde's derives: `Serialize`/`Deserialize` bare (assumed to be
/// serde's, the usual import) or under `serde`/`serde_derive`. Other crates' derives of the
/// same name (`rkyv::Serialize`) must not get `#[serde(...)]` attributes: nothing would
/// accept them.
fn is_serde(path: &Path) -> bool {
    let name = last_ident(path);
    if name != "Serialize" && name != "Deserialize" {
        return false;
    }
    match path.segments.len() {
        1 => path.leading_colon.is_none(),
        _ => {
            let first = path.segments[0].ident.to_string();
            first == "serde" || first == "serde_derive"
        }
    }
}

/// std derives that, on a `repr(packed)` struct, copy every field out (a reference to a packed
/// field may be unaligned), which fails for the tracker: it is not `Copy`. `Debug` is missing
/// because we write it ourselves, without the tracker.
fn copies_packed_fields(name: &str) -> bool {
    matches!(name, "Clone" | "PartialEq" | "PartialOrd" | "Ord" | "Hash")
}

/// Reads the derives and removes `Debug` from them (we emit a `Debug` impl that leaves the
/// tracker out). `cfg_attr(pred, derive(...))` is only scanned, not rewritten.
fn scan_derives(attrs: &mut Vec<Attribute>) -> syn::Result<Derives> {
    let mut d = Derives::default();
    let mut out = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        if attr.path().is_ident("derive") {
            let paths = attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)?;
            let mut kept: Punctuated<Path, Token![,]> = Punctuated::new();
            let mut has_serde = false;
            for p in paths {
                let name = last_ident(&p);
                match name.as_str() {
                    "Copy" => d.copy = Some(p.span()),
                    "Debug" => {
                        d.debug = true;
                        continue;
                    }
                    _ if is_serde(&p) => has_serde = true,
                    n if copies_packed_fields(n) => {
                        d.copies_fields.get_or_insert((p.span(), name.clone()));
                    }
                    _ => {}
                }
                kept.push(p);
            }
            if has_serde {
                d.serde.push(None);
            }
            if !kept.is_empty() {
                let style = attr.style;
                let bracket = attr.bracket_token;
                let pound = attr.pound_token;
                let mut a: Attribute = parse_quote!(#[derive(#kept)]);
                a.style = style;
                a.bracket_token = bracket;
                a.pound_token = pound;
                out.push(a);
            }
        } else {
            if attr.path().is_ident("cfg_attr") {
                scan_cfg_attr(&attr, &mut d);
            }
            out.push(attr);
        }
    }
    *attrs = out;
    Ok(d)
}

/// `#[cfg_attr(pred, derive(Serialize, Copy))]`: remembers `pred` for serde, flags `Copy`.
fn scan_cfg_attr(attr: &Attribute, d: &mut Derives) {
    let Ok(list) = attr.meta.require_list() else {
        return;
    };
    let mut pred = TokenStream2::new();
    let mut tokens = list.tokens.clone().into_iter();
    for tt in tokens.by_ref() {
        if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
            break;
        }
        pred.extend([tt]);
    }
    let mut serde = false;
    let mut in_derive = false;
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) if i == "derive" => in_derive = true,
            TokenTree::Group(g) if in_derive => {
                let paths = Punctuated::<Path, Token![,]>::parse_terminated.parse2(g.stream());
                for p in paths.into_iter().flatten() {
                    let name = last_ident(&p);
                    if name == "Copy" {
                        d.copy = Some(p.span());
                    } else if is_serde(&p) {
                        serde = true;
                    } else if copies_packed_fields(&name) {
                        d.copies_fields.get_or_insert((p.span(), name));
                    }
                }
                in_derive = false;
            }
            _ => in_derive = false,
        }
    }
    if serde {
        d.serde.push(Some(pred));
    }
}

fn has_repr(attrs: &[Attribute], what: &str) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("repr")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().contains(what))
    })
}

/// Whether `#[serde(flag)]` is written, directly or under a `cfg_attr` (under any predicate:
/// adding ours as well could give serde the flag twice, which it rejects).
fn has_serde_flag(attrs: &[Attribute], flag: &str) -> bool {
    attrs.iter().any(|a| {
        a.meta
            .require_list()
            .is_ok_and(|l| serde_flag_in(a.path(), l.tokens.clone(), flag))
    })
}

/// `path(tokens)` is `serde(.., flag, ..)`, or a `cfg_attr` holding one.
fn serde_flag_in(path: &Path, tokens: TokenStream2, flag: &str) -> bool {
    if path.is_ident("serde") {
        // Only a bare word at the top level: `rename = "transparent"` is a literal.
        return tokens
            .into_iter()
            .any(|tt| matches!(tt, TokenTree::Ident(i) if i == flag));
    }
    if !path.is_ident("cfg_attr") {
        return false;
    }
    let mut prev: Option<Ident> = None;
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                if let Some(p) = prev.take()
                    && serde_flag_in(&Path::from(p), g.stream(), flag)
                {
                    return true;
                }
            }
            TokenTree::Ident(i) => prev = Some(i),
            _ => prev = None,
        }
    }
    false
}

/// Whether a bound is `?Sized`.
fn maybe(b: &TypeParamBound) -> bool {
    matches!(b, TypeParamBound::Trait(t) if matches!(t.modifier, syn::TraitBoundModifier::Maybe(_)))
}

/// Whether a generic parameter or where-clause predicate relaxes `Sized`.
fn mentions_maybe_sized(generics: &Generics) -> bool {
    generics.params.iter().any(|p| match p {
        GenericParam::Type(t) => t.bounds.iter().any(maybe),
        _ => false,
    }) || generics.where_clause.as_ref().is_some_and(|w| {
        w.predicates.iter().any(|p| match p {
            WherePredicate::Type(t) => t.bounds.iter().any(maybe),
            _ => false,
        })
    })
}

/// Whether a field type is unsized on its face or is a type parameter declared `?Sized`.
fn may_be_unsized(ty: &Type, generics: &Generics) -> bool {
    let Type::Path(p) = ty else {
        return obviously_unsized(ty);
    };
    let Some(param) = p.path.get_ident().filter(|_| p.qself.is_none()) else {
        return false;
    };
    generics
        .type_params()
        .any(|t| t.ident == *param && t.bounds.iter().any(maybe))
        || generics.where_clause.as_ref().is_some_and(|w| {
            w.predicates.iter().any(|pred| match pred {
                WherePredicate::Type(t) => {
                    matches!(&t.bounded_ty, Type::Path(b) if b.qself.is_none() && b.path.is_ident(param))
                        && t.bounds.iter().any(maybe)
                }
                _ => false,
            })
        })
        || obviously_unsized(ty)
}

/// Whether a field type is unsized on its face (`[T]`, `str`, `dyn Trait`).
fn obviously_unsized(ty: &Type) -> bool {
    match ty {
        Type::Slice(_) | Type::TraitObject(_) => true,
        Type::Path(p) => p.qself.is_none() && p.path.is_ident("str"),
        Type::Paren(p) => obviously_unsized(&p.elem),
        Type::Group(g) => obviously_unsized(&g.elem),
        _ => false,
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr)?;
    let mut input: DeriveInput = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[tracked] goes on a struct definition (named-field, tuple or generic struct)",
        )
    })?;
    let ident = input.ident.clone();
    let field_ident = Ident::new(FIELD, Span::call_site());

    let data = match &mut input.data {
        Data::Struct(s) => s,
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "#[tracked] does not support enums: a field cannot be added to every variant \
                 without changing every literal and pattern. Track a struct that holds the enum \
                 (`#[tracked] struct Event { kind: EventKind }`), or put a \
                 `leakwatch::Token` in the variants you want to count",
            ));
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[tracked] does not support unions: a union never drops its fields, so drops \
                 could not be counted. Track the struct that owns the union instead, or count \
                 it with a `leakwatch::Token` kept next to it",
            ));
        }
    };
    if let Fields::Unit = data.fields {
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "#[tracked] needs a struct with braces or parentheses: a unit struct is written \
                 `{ident}` with no literal to hold the counted field. Declare it as \
                 `struct {ident} {{}}` and construct it as \
                 `{ident} {{ {FIELD}: Default::default() }}`"
            ),
        ));
    }

    let packed = has_repr(&input.attrs, "packed");
    let derives = scan_derives(&mut input.attrs)?;
    if let Some(span) = derives.copy {
        return Err(syn::Error::new(
            span,
            "#[tracked] types cannot be `Copy`: a copy makes a new instance without running any \
             code, so it cannot be counted (and the counted field has a destructor). Remove \
             `Copy` and keep `Clone` (clones are counted), or count the values with a \
             `leakwatch::Token` instead",
        ));
    }

    if packed && let Some((span, name)) = &derives.copies_fields {
        return Err(syn::Error::new(
            *span,
            format!(
                "#[tracked] on a `repr(packed)` struct cannot be combined with \
                 `#[derive({name})]`: on a packed struct that derive copies every field out, and \
                 the counted field is not `Copy` (copying it would create an uncounted \
                 instance). Implement `{name}` by hand, copying out the fields you need, or \
                 remove `packed`"
            ),
        ));
    }
    if let Fields::Unnamed(unnamed) = &data.fields
        && let Some(last) = unnamed.unnamed.last()
        && may_be_unsized(&last.ty, &input.generics)
    {
        let ty = &last.ty;
        return Err(syn::Error::new(
            ty.span(),
            format!(
                "#[tracked] adds its counted field at the end of a tuple struct, but only the \
                 last field may be unsized and this one is (or may be): it would no longer be \
                 last. Use named fields, where the counted field goes first, e.g. \
                 `struct {ident} {{ ..., tail: {} }}`",
                quote!(#ty)
            ),
        ));
    }

    for f in data.fields.iter() {
        if f.ident.as_ref().is_some_and(|i| i == FIELD) {
            return Err(syn::Error::new(
                f.span(),
                format!("`{FIELD}` is added by #[tracked]; remove this field or the attribute"),
            ));
        }
    }

    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let self_ty = quote!(#ident #ty_generics);

    // The injected field.
    let mut field_attrs: Vec<Attribute> = vec![
        parse_quote!(#[doc(hidden)]),
        parse_quote!(#[allow(non_snake_case)]),
    ];
    for pred in &derives.serde {
        field_attrs.push(match pred {
            None => parse_quote!(#[serde(skip)]),
            Some(p) => parse_quote!(#[cfg_attr(#p, serde(skip))]),
        });
    }
    // A struct generic only over lifetimes names itself with 'static in the tracker's type:
    // the tracker has a Drop impl, and naming `'a` there would make the borrow checker demand
    // that everything the struct borrows strictly outlives it (E0597 where the plain struct
    // compiles). All lifetimes share one `TypeStats`, so nothing else changes.
    let tracker_target = if input.generics.lifetimes().next().is_some()
        && input
            .generics
            .params
            .iter()
            .all(|p| matches!(p, GenericParam::Lifetime(_)))
    {
        let statics = input.generics.lifetimes().map(|_| quote!('static));
        quote!(#ident<#(#statics),*>)
    } else {
        self_ty.clone()
    };
    let field = Field {
        attrs: field_attrs,
        vis: input.vis.clone(),
        mutability: syn::FieldMutability::None,
        ident: None,
        colon_token: None,
        ty: parse_quote!(::leakwatch::__private::Tracker<#tracker_target>),
    };
    let last_unsized = data
        .fields
        .iter()
        .last()
        .is_some_and(|f| obviously_unsized(&f.ty));
    let mut newtype_serde = false;
    match &mut data.fields {
        Fields::Named(named) => {
            let mut f = field;
            f.ident = Some(field_ident.clone());
            f.colon_token = Some(Default::default());
            named.named.insert(0, f);
        }
        Fields::Unnamed(unnamed) => {
            newtype_serde = unnamed.unnamed.len() == 1 && !derives.serde.is_empty();
            unnamed.unnamed.push(field);
        }
        Fields::Unit => unreachable!("rejected above"),
    }
    if newtype_serde && !has_serde_flag(&input.attrs, "transparent") {
        // A newtype with a second (skipped) field would serialise as a one-element tuple.
        for pred in &derives.serde {
            input.attrs.push(match pred {
                None => parse_quote!(#[serde(transparent)]),
                Some(p) => parse_quote!(#[cfg_attr(#p, serde(transparent))]),
            });
        }
    }

    // The series name: the override, or the module path with `::` turned into `.` by const fns.
    let name_expr = match &args.name {
        Some(lit) => quote!(#lit),
        None => {
            let raw = format!("::{}", ident.unraw());
            quote! {{
                const RAW: &str = ::core::concat!(::core::module_path!(), #raw);
                const BYTES: [u8; ::leakwatch::__private::TypeStats::dotted_len(RAW)] =
                    ::leakwatch::__private::TypeStats::dotted(RAW);
                ::leakwatch::__private::TypeStats::str_from_utf8(&BYTES)
            }}
        }
    };

    // How live bytes are known: a fixed size_of (lifetimes do not change sizes, so they become
    // 'static), per instance for type/const generics (a static cannot name them), or not at all.
    let only_lifetimes = input
        .generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)));
    let (stats_ctor, instance_bytes) = if mentions_maybe_sized(&input.generics) || last_unsized {
        (
            quote!(::leakwatch::__private::TypeStats::new_unsized(NAME)),
            quote!(),
        )
    } else if only_lifetimes {
        let statics = input
            .generics
            .lifetimes()
            .map(|_| quote!('static))
            .collect::<Vec<_>>();
        let ty = if statics.is_empty() {
            quote!(#ident)
        } else {
            quote!(#ident<#(#statics),*>)
        };
        (
            quote!(::leakwatch::__private::TypeStats::new(NAME, ::core::mem::size_of::<#ty>())),
            quote!(),
        )
    } else {
        (
            quote!(::leakwatch::__private::TypeStats::new_generic(NAME)),
            quote! {
                const __LEAKWATCH_INSTANCE_BYTES: ::core::option::Option<usize> =
                    ::core::option::Option::Some(::core::mem::size_of::<Self>());
            },
        )
    };

    let debug_impl = if derives.debug {
        debug_impl(&input, &field_ident, packed)
    } else {
        quote!()
    };

    let tracked_impl = quote! {
        impl #impl_generics ::leakwatch::__private::Tracked for #self_ty #where_clause {
            #[inline]
            fn __leakwatch_stats() -> &'static ::leakwatch::__private::TypeStats {
                const NAME: &str = #name_expr;
                static STATS: ::leakwatch::__private::TypeStats = #stats_ctor;
                &STATS
            }
            #instance_bytes
        }
    };

    Ok(quote! {
        #input
        #tracked_impl
        #debug_impl
    })
}

/// `Debug` as `#[derive(Debug)]` would write it for the struct without the tracker.
fn debug_impl(input: &DeriveInput, field_ident: &Ident, packed: bool) -> TokenStream2 {
    let ident = &input.ident;
    let name = ident.unraw().to_string();
    let mut generics = input.generics.clone();
    let type_params: Vec<Ident> = generics.type_params().map(|t| t.ident.clone()).collect();
    {
        let wc = generics.make_where_clause();
        for t in &type_params {
            wc.predicates.push(parse_quote!(#t: ::core::fmt::Debug));
        }
    }
    let (ig, tg, wc) = generics.split_for_impl();
    let Data::Struct(data) = &input.data else {
        return quote!();
    };
    let body = match &data.fields {
        // As std's derive does, the last field is passed as `&&self.x`: a reference to it is
        // sized, so an unsized last field (`[u8]`, `T: ?Sized`) still coerces to `&dyn Debug`.
        // A packed struct's fields are copied out (`{ self.x }`), as std does, because a
        // reference to one may be unaligned.
        Fields::Named(named) => {
            let idents: Vec<&Ident> = named
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref())
                .filter(|i| *i != field_ident)
                .collect();
            let fields = idents.iter().enumerate().map(|(k, i)| {
                let s = i.unraw().to_string();
                let value = if packed {
                    quote!({ self.#i })
                } else {
                    quote!(self.#i)
                };
                if k + 1 == idents.len() {
                    quote!(.field(#s, &&#value))
                } else {
                    quote!(.field(#s, &#value))
                }
            });
            quote!(f.debug_struct(#name) #(#fields)* .finish())
        }
        Fields::Unnamed(unnamed) => {
            let n = unnamed.unnamed.len() - 1;
            let fields = (0..n).map(|i| {
                let idx = syn::Index::from(i);
                let value = if packed {
                    quote!({ self.#idx })
                } else {
                    quote!(self.#idx)
                };
                if i + 1 == n {
                    quote!(.field(&&#value))
                } else {
                    quote!(.field(&#value))
                }
            });
            quote!(f.debug_tuple(#name) #(#fields)* .finish())
        }
        Fields::Unit => quote!(f.write_str(#name)),
    };
    quote! {
        #[automatically_derived]
        impl #ig ::core::fmt::Debug for #ident #tg #wc {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #body
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(item: TokenStream2) -> String {
        expand(TokenStream2::new(), item).unwrap().to_string()
    }

    #[test]
    fn only_serde_paths_get_serde_attributes() {
        for item in [
            quote!(
                #[derive(rkyv::Serialize, rkyv::Deserialize)]
                struct S(u32);
            ),
            quote!(
                #[derive(::rkyv::Serialize)]
                struct S(u32);
            ),
            quote!(
                #[cfg_attr(feature = "x", derive(rkyv::Serialize))]
                struct S(u32);
            ),
        ] {
            let out = expanded(item);
            assert!(!out.contains("serde"), "{out}");
        }
        for item in [
            quote!(
                #[derive(Serialize)]
                struct S(u32);
            ),
            quote!(
                #[derive(serde::Serialize)]
                struct S(u32);
            ),
            quote!(
                #[derive(::serde::Deserialize)]
                struct S(u32);
            ),
            quote!(
                #[cfg_attr(feature = "x", derive(serde::Serialize))]
                struct S(u32);
            ),
        ] {
            let out = expanded(item);
            assert!(out.contains("serde (skip)"), "{out}");
            assert!(out.contains("serde (transparent)"), "{out}");
        }
    }

    #[test]
    fn a_transparent_already_written_is_not_added_again() {
        for item in [
            quote!(
                #[derive(Serialize)]
                #[serde(transparent)]
                struct S(u32);
            ),
            quote! {
                #[cfg_attr(feature = "x", derive(Serialize))]
                #[cfg_attr(feature = "x", serde(transparent))]
                struct S(u32);
            },
        ] {
            let out = expanded(item);
            assert_eq!(out.matches("transparent").count(), 1, "{out}");
        }
        let out = expanded(quote!(
            #[derive(Serialize)]
            #[serde(rename = "transparent")]
            struct S(u32);
        ));
        assert!(
            out.contains("serde (transparent)"),
            "a renamed newtype still gets it: {out}"
        );
    }
}
