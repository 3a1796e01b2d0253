//! Procedural macros for [leakwatch](https://docs.rs/leakwatch). Use them through
//! `leakwatch::tracked`; this crate is an implementation detail and need not be a dependency
//! of your crate.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Fields, GenericArgument, GenericParam, Generics, Ident, LitStr,
    Member, Path, PathArguments, Token, Type, TypeParamBound, WherePredicate, parse_quote,
};

/// Counts every instance of a struct: created, dropped, live, peak live and approximate live
/// bytes, in per-thread counters (no lock, no shared write on the hot path).
///
/// The struct holds one field of type `leakwatch::Tracker<Self>`, named as you like; the
/// attribute finds it. Creating a tracker counts an instance, dropping it counts a drop.
///
/// ```
/// use leakwatch::Tracker;
///
/// #[leakwatch::tracked(name = "presence.Watch")] // first, above the derives
/// #[derive(Debug, Clone, PartialEq)]
/// struct Watch {
///     user: u32,
///     tracker: Tracker<Self>,
/// }
///
/// let w = Watch { user: 1, tracker: Tracker::new() };
/// let w2 = w.clone(); // a clone is a new instance
/// assert_eq!(leakwatch::counts::<Watch>().live, 2);
/// assert_eq!(format!("{w:?}"), "Watch { user: 1 }"); // Debug leaves the tracker out
/// assert_eq!(w, w2);
/// drop((w, w2));
/// let c = leakwatch::counts::<Watch>();
/// assert_eq!((c.created, c.dropped, c.live), (2, 2, 0));
///
/// // Patterns work as for any struct; `..` leaves the tracker in `w3`, so the instance is
/// // counted until `w3` goes out of scope.
/// let w3 = Watch { user: 3, tracker: Default::default() };
/// let Watch { user, .. } = w3;
/// assert_eq!(user, 3);
/// ```
///
/// # The tracker field
///
/// Write it like any other field: `tracker: leakwatch::Tracker<Self>` (or with the struct's
/// own name, `Tracker<Watch>`; in a tuple struct just the type, `struct Id(u64,
/// Tracker<Self>)`). In literals give it `Tracker::new()` or `Default::default()`; with
/// `#[derive(Default)]`, `..Default::default()` works too. It is zero-sized with alignment 1,
/// so `size_of` is the same as without it. Its visibility is yours: a private tracker field
/// keeps literals of the struct private, as any private field does.
///
/// A struct without such a field, or with more than one, fails to compile with a message that
/// names the struct and says what to add:
///
/// ```text
/// error: #[tracked] struct `Watch` has no tracker field: add a field of type
///        `leakwatch::Tracker<Self>` (any name), e.g. `tracker: leakwatch::Tracker<Self>`, and
///        set it in each literal with `tracker: leakwatch::Tracker::new()` (or `Default::default()`)
/// ```
///
/// # What it generates
///
/// ```text
/// #[leakwatch::tracked]
/// #[derive(Debug, Clone, Serialize)]
/// pub struct Watch { user: u32, tracker: Tracker<Self> }
/// ```
///
/// expands to (in module `my_crate::presence`):
///
/// ```text
/// #[derive(Clone, Serialize)]
/// pub struct Watch {
///     user: u32,
///     #[serde(skip)]                      // only when Serialize/Deserialize is derived
///     tracker: Tracker<Watch>,            // `Self` spelled out (lifetimes as 'static)
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
/// // exactly what the derive printed before the field was added.
/// impl ::core::fmt::Debug for Watch { /* f.debug_struct("Watch").field("user", &&self.user) */ }
/// // plus a never-called function checking that `tracker` is leakwatch's `Tracker`.
/// ```
///
/// [`Tracker`](https://docs.rs/leakwatch/latest/leakwatch/struct.Tracker.html) counts a creation
/// in `new()`, `Default::default()` and `Clone::clone()` and a drop in `Drop`, so a clone is a
/// new instance and a value may be dropped on any thread (each thread counts what it did;
/// `live = Σcreated − Σdropped`). `PartialEq`, `Ord` and `Hash` treat all trackers as equal, so
/// derived comparisons and hashes are unchanged.
///
/// # Arguments
///
/// * `name = "presence.Watch"`: the series name. By default the type's path with `::` replaced
///   by `.`, e.g. `my_crate.presence.Watch` (Graphite-friendly).
/// * `crate = path` (or `crate = "path"`): where the generated code finds leakwatch, for a
///   renamed dependency: with `lw = { package = "leakwatch", .. }` in Cargo.toml, write
///   `#[lw::tracked(crate = lw)]`. Default `::leakwatch`.
///
/// # Derives: write `#[tracked]` first
///
/// An attribute only sees the attributes written *below* it. Derives below `#[tracked]` work
/// with the tracker: `Clone` and `Default` create counted trackers, serde's `Serialize` and
/// `Deserialize` get `#[serde(skip)]` on the field (a deserialised value is a new, counted
/// instance), `Debug` output leaves the field out. Derives written *above* `#[tracked]` expand
/// before it and cannot be adjusted: `Debug` there prints the tracker as `tracker: Tracker`,
/// and serde's derives there fail (`Tracker` is not `Serialize`). Move them below.
///
/// # Tuple and generic structs
///
/// * Tuple structs: the tracker is a positional field like the others, e.g.
///   `Id(7, Tracker::new())`. A tuple struct with one field besides the tracker that derives
///   serde also gets `#[serde(transparent)]`, so it still (de)serialises as its inner value.
/// * An unsized last field (`data: [u8]`, `body: T` with `T: ?Sized`) must stay last: put the
///   tracker before it (an error says so otherwise). Unsizing coercions such as
///   `Box<S<[u8; 4]>>` to `Box<S<[u8]>>` are not available, because the tracker's type names
///   `S<T>`.
/// * Generic structs: one series for all instantiations (`Cache<u8>` and `Cache<String>` are
///   both counted as `Cache`), because a `static` cannot depend on type parameters. Live bytes
///   are then summed per instance with each instantiation's own `size_of`; if a type parameter
///   is `?Sized`, live bytes are not reported.
/// * Structs generic only over lifetimes: write `Tracker<Self>`; the attribute spells it with
///   `'static` (`Tracker<Holder<'static>>`), so borrowing rules stay those of the plain struct.
///   With type parameters the tracker names `S<'a, T>`, and because it has a `Drop` impl, what
///   the struct borrows must strictly outlive it (declare the referent before the value that
///   holds it).
///
/// # Unsupported shapes (each a compile error that says what to do)
///
/// * enums and unions: track a struct that holds them, or put a `leakwatch::Token` in it;
/// * unit structs (`struct S;`): write `struct S { tracker: leakwatch::Tracker<Self> }`;
/// * `Copy` types: a copy creates an instance without any code running, so it cannot be
///   counted; drop `Copy` (keep `Clone`) or count with a `leakwatch::Token`;
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
    /// `crate = path`: where the generated code finds leakwatch (a renamed dependency).
    krate: Option<Path>,
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
        } else if meta.path.is_ident("crate") {
            let value = meta.value()?;
            // Both spellings in use: `crate = "lw"` (serde's) and `crate = lw`.
            let path = if value.peek(LitStr) {
                value.parse::<LitStr>()?.parse::<Path>()?
            } else {
                value.parse::<Path>()?
            };
            args.krate = Some(path);
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[tracked] argument; the arguments are `name = \"series.name\"` and \
                 `crate = path`, e.g. #[tracked(name = \"presence.Watch\")]",
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

/// Whether `ty` is a tracker of the struct `ident`: a path ending in `Tracker<Self>` or
/// `Tracker<ident<..>>` (any prefix: `leakwatch::Tracker`, an import, a renamed crate). Returns
/// the type argument, to be spelled out.
fn tracker_arg<'t>(ty: &'t mut Type, ident: &Ident) -> Option<&'t mut Type> {
    let arg = match ty {
        Type::Group(g) => return tracker_arg(&mut g.elem, ident),
        Type::Paren(p) => return tracker_arg(&mut p.elem, ident),
        Type::Path(p) if p.qself.is_none() => tracker_generic(&mut p.path)?,
        _ => return None,
    };
    names_struct(arg, ident).then_some(arg)
}

/// The one type argument of a path ending in `Tracker<..>`.
fn tracker_generic(path: &mut Path) -> Option<&mut Type> {
    let last = path.segments.last_mut()?;
    if last.ident != "Tracker" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &mut last.arguments else {
        return None;
    };
    if args.args.len() != 1 {
        return None;
    }
    match args.args.first_mut()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// `Self`, or a path whose last segment is the struct's name.
fn names_struct(ty: &Type, ident: &Ident) -> bool {
    match ty {
        Type::Group(g) => names_struct(&g.elem, ident),
        Type::Paren(p) => names_struct(&p.elem, ident),
        Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Self" || s.ident.unraw() == ident.unraw()),
        _ => false,
    }
}

/// The field's name for messages: `tracker`, or `field 1` in a tuple struct.
fn field_label(f: &syn::Field, index: usize) -> String {
    match &f.ident {
        Some(i) => format!("`{}`", i.unraw()),
        None => format!("field {index}"),
    }
}

/// `leakwatch` or the `crate = ..` override, as the user would write it in a type.
fn crate_display(krate: &Path) -> String {
    let s = quote!(#krate).to_string().replace(' ', "");
    s.trim_start_matches("::").to_owned()
}

/// The index of the struct's one tracker field, or an error naming the struct and saying what
/// to add or remove.
fn find_tracker(ident: &Ident, fields: &mut Fields, krate: &Path) -> syn::Result<usize> {
    let found: Vec<usize> = fields
        .iter_mut()
        .enumerate()
        .filter_map(|(i, f)| tracker_arg(&mut f.ty, ident).map(|_| i))
        .collect();
    let lw = crate_display(krate);
    match found.as_slice() {
        [one] => Ok(*one),
        [] => {
            let name = ident.unraw();
            let example = match fields {
                Fields::Unnamed(_) => format!(
                    "add `{lw}::Tracker<Self>` as a field, e.g. \
                     `struct {name}(..., {lw}::Tracker<Self>)`, and pass \
                     `{lw}::Tracker::new()` (or `Default::default()`) for it in each \
                     constructor call"
                ),
                _ => format!(
                    "add a field of type `{lw}::Tracker<Self>` (any name), e.g. \
                     `tracker: {lw}::Tracker<Self>`, and set it in each literal with \
                     `tracker: {lw}::Tracker::new()` (or `Default::default()`)"
                ),
            };
            // A tracker of another type is most likely a typo for this one.
            let other = fields.iter_mut().enumerate().find_map(|(i, f)| {
                let label = field_label(f, i);
                let Type::Path(p) = &mut f.ty else {
                    return None;
                };
                tracker_generic(&mut p.path).map(|t| (label, quote!(#t).to_string()))
            });
            let hint = match other {
                Some((label, ty)) => format!(
                    " ({label} is a `Tracker<{ty}>`: a tracker names its own struct, \
                     `Tracker<Self>`)"
                ),
                None => String::new(),
            };
            Err(syn::Error::new(
                ident.span(),
                format!("#[tracked] struct `{name}` has no tracker field: {example}{hint}"),
            ))
        }
        [_, second, ..] => {
            let labels: Vec<String> = fields
                .iter()
                .enumerate()
                .filter(|(i, _)| found.contains(i))
                .map(|(i, f)| field_label(f, i))
                .collect();
            let f = fields
                .iter()
                .nth(*second)
                .expect("index from the same fields");
            Err(syn::Error::new(
                f.ty.span(),
                format!(
                    "#[tracked] struct `{}` has {} tracker fields ({}): keep exactly one \
                     `Tracker<Self>`, each one counts every instance",
                    ident.unraw(),
                    found.len(),
                    labels.join(", ")
                ),
            ))
        }
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr)?;
    let krate: Path = args.krate.clone().unwrap_or(parse_quote!(::leakwatch));
    let lw = crate_display(&krate);
    let mut input: DeriveInput = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[tracked] goes on a struct definition (named-field, tuple or generic struct)",
        )
    })?;
    let ident = input.ident.clone();

    let data = match &mut input.data {
        Data::Struct(s) => s,
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                format!(
                    "#[tracked] does not support enums: a tracker field would have to be in \
                     every variant, and each variant's literals and patterns would change. \
                     Track a struct that holds the enum (`#[tracked] struct Event {{ kind: \
                     EventKind, tracker: {lw}::Tracker<Self> }}`), or put a `{lw}::Token` in \
                     the variants you want to count"
                ),
            ));
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                format!(
                    "#[tracked] does not support unions: a union never drops its fields, so \
                     drops could not be counted. Track the struct that owns the union instead, \
                     or count it with a `{lw}::Token` kept next to it"
                ),
            ));
        }
    };
    if let Fields::Unit = data.fields {
        let name = ident.unraw();
        return Err(syn::Error::new(
            ident.span(),
            format!(
                "#[tracked] struct `{name}` is a unit struct, with no room for the tracker \
                 field. Declare it as `struct {name} {{ tracker: {lw}::Tracker<Self> }}` and \
                 construct it as `{name} {{ tracker: {lw}::Tracker::new() }}`"
            ),
        ));
    }

    let packed = has_repr(&input.attrs, "packed");
    let derives = scan_derives(&mut input.attrs)?;
    if let Some(span) = derives.copy {
        return Err(syn::Error::new(
            span,
            format!(
                "#[tracked] types cannot be `Copy`: a copy makes a new instance without running \
                 any code, so it cannot be counted (and the tracker has a destructor). Remove \
                 `Copy` and keep `Clone` (clones are counted), or count the values with a \
                 `{lw}::Token` instead"
            ),
        ));
    }

    if packed && let Some((span, name)) = &derives.copies_fields {
        return Err(syn::Error::new(
            *span,
            format!(
                "#[tracked] on a `repr(packed)` struct cannot be combined with \
                 `#[derive({name})]`: on a packed struct that derive copies every field out, and \
                 the tracker is not `Copy` (copying it would create an uncounted instance). \
                 Implement `{name}` by hand, copying out the fields you need, or remove `packed`"
            ),
        ));
    }

    let tracker_index = find_tracker(&ident, &mut data.fields, &krate)?;
    let field_count = data.fields.len();
    // Only the last field may be unsized: a tracker written after one would hide it, and
    // rustc's message ("size cannot be known") would not say what to move.
    if tracker_index + 1 == field_count && field_count >= 2 {
        let before = data.fields.iter().nth(field_count - 2).expect("two fields");
        if may_be_unsized(&before.ty, &input.generics) {
            let label = field_label(before, field_count - 2);
            return Err(syn::Error::new(
                before.ty.span(),
                format!(
                    "#[tracked] struct `{}`: {label} is (or may be) unsized, so it must stay the \
                     last field; move the tracker field before it",
                    ident.unraw()
                ),
            ));
        }
    }

    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let self_ty = quote!(#ident #ty_generics);

    // A struct generic only over lifetimes names itself with 'static in the tracker's type:
    // the tracker has a Drop impl, and naming `'a` there would make the borrow checker demand
    // that everything the struct borrows strictly outlives it (E0597 where the plain struct
    // compiles). All lifetimes share one `TypeStats`, so nothing else changes.
    let only_lifetimes = input
        .generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)));
    let tracker_target: Type = if only_lifetimes && input.generics.lifetimes().next().is_some() {
        let statics = input.generics.lifetimes().map(|_| quote!('static));
        parse_quote!(#ident<#(#statics),*>)
    } else {
        parse_quote!(#self_ty)
    };

    let last_unsized = data
        .fields
        .iter()
        .last()
        .is_some_and(|f| obviously_unsized(&f.ty));
    let newtype_serde =
        matches!(data.fields, Fields::Unnamed(_)) && field_count == 2 && !derives.serde.is_empty();
    let tracker_field = data
        .fields
        .iter_mut()
        .nth(tracker_index)
        .expect("index from find_tracker");
    // Spell `Self` out: the lifetime rule above, and `Self` would name `S<'a>`.
    let user_ty_span = tracker_field.ty.span();
    *tracker_arg(&mut tracker_field.ty, &ident).expect("found by find_tracker") =
        tracker_target.clone();
    let already_skipped = has_serde_flag(&tracker_field.attrs, "skip");
    if !already_skipped {
        for pred in &derives.serde {
            tracker_field.attrs.push(match pred {
                None => parse_quote!(#[serde(skip)]),
                Some(p) => parse_quote!(#[cfg_attr(#p, serde(skip))]),
            });
        }
    }
    let tracker_member = match &tracker_field.ident {
        Some(i) => Member::Named(i.clone()),
        None => Member::Unnamed(syn::Index::from(tracker_index)),
    };
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
                const BYTES: [u8; #krate::__private::TypeStats::dotted_len(RAW)] =
                    #krate::__private::TypeStats::dotted(RAW);
                #krate::__private::TypeStats::str_from_utf8(&BYTES)
            }}
        }
    };

    // How live bytes are known: a fixed size_of (lifetimes do not change sizes, so they become
    // 'static), per instance for type/const generics (a static cannot name them), or not at all.
    let (stats_ctor, instance_bytes) = if mentions_maybe_sized(&input.generics) || last_unsized {
        (
            quote!(#krate::__private::TypeStats::new_unsized(NAME)),
            quote!(),
        )
    } else if only_lifetimes {
        (
            quote!(#krate::__private::TypeStats::new(NAME, ::core::mem::size_of::<#tracker_target>())),
            quote!(),
        )
    } else {
        (
            quote!(#krate::__private::TypeStats::new_generic(NAME)),
            quote! {
                const __LEAKWATCH_INSTANCE_BYTES: ::core::option::Option<usize> =
                    ::core::option::Option::Some(::core::mem::size_of::<Self>());
            },
        )
    };

    let debug_impl = if derives.debug {
        debug_impl(&input, tracker_index, packed)
    } else {
        quote!()
    };

    let tracked_impl = quote! {
        impl #impl_generics #krate::__private::Tracked for #self_ty #where_clause {
            #[inline]
            fn __leakwatch_stats() -> &'static #krate::__private::TypeStats {
                const NAME: &str = #name_expr;
                static STATS: #krate::__private::TypeStats = #stats_ctor;
                &STATS
            }
            #instance_bytes
        }
    };

    // The field was recognised by its spelling (`..::Tracker<Self>`); this never-called
    // function makes sure it is leakwatch's tracker, with the error at the user's field type.
    let check = quote_spanned! {user_ty_span=>
        const _: () = {
            #[allow(dead_code)]
            fn tracker_field_is_a_leakwatch_tracker #impl_generics (value: &#self_ty)
            #where_clause
            {
                let _: &#krate::__private::Tracker<#tracker_target> = &value.#tracker_member;
            }
        };
    };

    Ok(quote! {
        #input
        #tracked_impl
        #debug_impl
        #check
    })
}

/// `Debug` as `#[derive(Debug)]` would write it for the struct without the tracker.
fn debug_impl(input: &DeriveInput, tracker_index: usize, packed: bool) -> TokenStream2 {
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
    let shown: Vec<(usize, &syn::Field)> = data
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != tracker_index)
        .collect();
    // As std's derive does, the last field is passed as `&&self.x`: a reference to it is
    // sized, so an unsized last field (`[u8]`, `T: ?Sized`) still coerces to `&dyn Debug`.
    // A packed struct's fields are copied out (`{ self.x }`), as std does, because a
    // reference to one may be unaligned.
    let fields = shown.iter().enumerate().map(|(k, (i, f))| {
        let member = match &f.ident {
            Some(id) => Member::Named(id.clone()),
            None => Member::Unnamed(syn::Index::from(*i)),
        };
        let value = if packed {
            quote!({ self.#member })
        } else {
            quote!(self.#member)
        };
        let value = if k + 1 == shown.len() {
            quote!(&&#value)
        } else {
            quote!(&#value)
        };
        match &f.ident {
            Some(id) => {
                let s = id.unraw().to_string();
                quote!(.field(#s, #value))
            }
            None => quote!(.field(#value)),
        }
    });
    let body = match &data.fields {
        Fields::Named(_) => quote!(f.debug_struct(#name) #(#fields)* .finish()),
        Fields::Unnamed(_) => quote!(f.debug_tuple(#name) #(#fields)* .finish()),
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
                struct S(u32, Tracker<Self>);
            ),
            quote!(
                #[derive(::rkyv::Serialize)]
                struct S(u32, Tracker<Self>);
            ),
            quote!(
                #[cfg_attr(feature = "x", derive(rkyv::Serialize))]
                struct S(u32, Tracker<Self>);
            ),
        ] {
            let out = expanded(item);
            assert!(!out.contains("serde"), "{out}");
        }
        for item in [
            quote!(
                #[derive(Serialize)]
                struct S(u32, Tracker<Self>);
            ),
            quote!(
                #[derive(serde::Serialize)]
                struct S(u32, Tracker<Self>);
            ),
            quote!(
                #[derive(::serde::Deserialize)]
                struct S(u32, Tracker<Self>);
            ),
            quote!(
                #[cfg_attr(feature = "x", derive(serde::Serialize))]
                struct S(u32, Tracker<Self>);
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
                struct S(u32, Tracker<Self>);
            ),
            quote! {
                #[cfg_attr(feature = "x", derive(Serialize))]
                #[cfg_attr(feature = "x", serde(transparent))]
                struct S(u32, Tracker<Self>);
            },
        ] {
            let out = expanded(item);
            assert_eq!(out.matches("transparent").count(), 1, "{out}");
        }
        let out = expanded(quote!(
            #[derive(Serialize)]
            #[serde(rename = "transparent")]
            struct S(u32, Tracker<Self>);
        ));
        assert!(
            out.contains("serde (transparent)"),
            "a renamed newtype still gets it: {out}"
        );
    }

    #[test]
    fn the_crate_override_replaces_every_path_to_leakwatch() {
        let out = expand(
            quote!(crate = lw),
            quote!(
                struct S {
                    t: lw::Tracker<Self>,
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(!out.contains("leakwatch ::"), "{out}");
        assert!(out.contains("lw :: __private :: Tracked"), "{out}");
        let quoted = expand(
            quote!(crate = "::lw"),
            quote!(
                struct S {
                    t: lw::Tracker<Self>,
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(!quoted.contains("leakwatch ::"), "{quoted}");
        assert!(quoted.contains(":: lw :: __private :: Tracked"), "{quoted}");
    }

    #[test]
    fn self_is_spelled_out_with_static_lifetimes() {
        let out = expanded(quote!(
            struct Holder<'a> {
                s: &'a str,
                t: Tracker<Self>,
            }
        ));
        assert!(out.contains("t : Tracker < Holder < 'static > >"), "{out}");
        let out = expanded(quote!(
            struct Cache<T> {
                v: Vec<T>,
                t: leakwatch::Tracker<Cache<T>>,
            }
        ));
        assert!(
            out.contains("t : leakwatch :: Tracker < Cache < T > >"),
            "{out}"
        );
    }
}
