//! `#[derive(Module)]`: one walk per form (shared, mutable) over every non-config field,
//! each named by its field; the struct reports itself when it is a `Regularizer`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Member};

use crate::attrs::{field_role, FieldRole};
use crate::ctxt::Ctxt;
use crate::options::{self, mentions_any};

/// Expands the derive; on errors, the errors (all of them) and an empty `Module` impl, so
/// that uses of the type report nothing more.
pub fn expand(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let opts = options::derive_attrs(&input.attrs, &mut cx);
    let krate = opts.krate();
    let fields = match &input.data {
        Data::Struct(s) => Some(&s.fields),
        Data::Enum(e) if opts.transparent => return expand_enum(input, e, &krate, cx, &opts),
        Data::Enum(e) => {
            cx.push(syn::Error::new(
                e.enum_token.span,
                "#[derive(Module)] supports structs only: an enum has no fixed state tree; \
                 put each variant's layers in a struct field (use Option<_> for optional ones)",
            ));
            None
        }
        Data::Union(u) => {
            cx.push(syn::Error::new(
                u.union_token.span,
                "#[derive(Module)] supports structs only, not unions",
            ));
            None
        }
    };
    if opts.transparent {
        cx.push(syn::Error::new(
            input.ident.span(),
            "#[artifex(transparent)] is for enums whose variants each hold one module; \
             a struct's fields are walked by name",
        ));
    }
    let type_params: Vec<_> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    let mut walks = Vec::new();
    let mut walks_mut = Vec::new();
    let mut bounds = Vec::new();

    // `Fields::members` names every field (`a` or `0`), whatever the struct's kind.
    let members = fields.into_iter().flat_map(|fields| {
        fields.members().zip(fields.iter()).map(|(member, field)| {
            let name = match &member {
                Member::Named(ident) => ident.unraw().to_string(),
                Member::Unnamed(index) => index.index.to_string(),
            };
            (member, name, field)
        })
    });

    for (member, name, field) in members {
        match cx.ok(field_role(&field.attrs)) {
            None | Some(FieldRole::Config(_)) => continue,
            Some(FieldRole::Auto) => {}
            Some(FieldRole::Param(_, attr) | FieldRole::BatchStat(_, attr)) => {
                cx.push(module_only(&attr));
                continue;
            }
            Some(_) => {
                if let Some(attr) = field.attrs.iter().find(|a| crate::attrs::is_role_attr(a)) {
                    cx.push(module_only(attr));
                }
                continue;
            }
        }
        let ty = &field.ty;
        let span = ty.span();
        let module = quote_spanned!(span=> <#ty as #krate::Module>);
        let segment = quote!(#krate::walk::Segment::Field(#name));
        walks.push(quote! {
            if __v.enter(#segment) {
                #module::walk(&self.#member, __v);
                __v.leave();
            }
        });
        walks_mut.push(quote! {
            if __v.enter(#segment) {
                #module::walk_mut(&mut self.#member, __v);
                __v.leave();
            }
        });
        if mentions_any(ty, &type_params) {
            bounds.push(quote_spanned!(span=> #ty: #krate::Module));
        }
    }

    let name = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let where_tokens = match impl_where(input, &krate, cx, &opts, bounds) {
        Ok(tokens) => tokens,
        Err(errors_and_stand_in) => return errors_and_stand_in,
    };

    let self_reg = regularizer_report(&krate, input);

    // Not `#[automatically_derived]`: rustc then blames an unmet bound on the derive as a
    // whole; without it, the note points at the field whose type needs the bound.
    quote! {
        impl #impl_generics #krate::Module for #name #ty_generics #where_tokens {
            fn walk<'__artifex>(&'__artifex self, __v: &mut dyn #krate::walk::Visit<'__artifex>) {
                let _ = &__v;
                #self_reg
                #(#walks)*
            }

            fn walk_mut(&mut self, __v: &mut dyn #krate::walk::VisitMut) {
                let _ = &__v;
                #(#walks_mut)*
            }
        }
    }
}

/// How the walk reports `self` as a `Regularizer`: by autoref specialization (the impl
/// alone suffices), or, under `#[regularizer]`, as a requirement the compiler checks.
fn regularizer_report(krate: &TokenStream, input: &DeriveInput) -> TokenStream {
    match input
        .attrs
        .iter()
        .find(|a| a.path().is_ident("regularizer"))
    {
        Some(attr) => {
            let required =
                quote_spanned!(attr.path().span()=> #krate::walk::required_regularizer(self));
            quote!(__v.regularizer(#required);)
        }
        None => quote! {
            {
                #[allow(unused_imports)]
                use #krate::walk::{IsRegularizer as _, NotRegularizer as _};
                if let ::core::option::Option::Some(__r) =
                    (&#krate::walk::RegularizerProbe(self)).regularizer()
                {
                    __v.regularizer(__r);
                }
            }
        },
    }
}

/// The `where` clause of the generated impl: the struct's own predicates plus the declared
/// (`bound = ..`) or inferred field bounds. When attribute errors were collected, `Err` holds
/// what to emit instead: every error and a stand-in impl, so uses of the type add no errors.
fn impl_where(
    input: &DeriveInput,
    krate: &TokenStream,
    cx: Ctxt,
    opts: &options::Options,
    bounds: Vec<TokenStream>,
) -> Result<TokenStream, TokenStream> {
    let mut predicates: Vec<TokenStream> = input
        .generics
        .where_clause
        .as_ref()
        .map(|w| w.predicates.iter().map(ToTokens::to_token_stream).collect())
        .unwrap_or_default();
    if cx.failed() {
        let errors = cx.into_compile_errors();
        let stand_in =
            stand_in_module(krate, &input.ident, &input.generics, &where_of(&predicates));
        return Err(quote! {
            #errors
            #stand_in
        });
    }
    match &opts.bound {
        Some(declared) => predicates.extend(declared.iter().map(ToTokens::to_token_stream)),
        None => predicates.extend(bounds),
    }
    Ok(where_of(&predicates))
}

/// An empty `Module` impl emitted after failed expansion, so that uses of the type report
/// nothing more than the attribute errors themselves.
pub fn stand_in_module(
    krate: &impl ToTokens,
    name: &syn::Ident,
    generics: &syn::Generics,
    where_tokens: &TokenStream,
) -> TokenStream {
    let (impl_generics, ty_generics, _) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Module for #name #ty_generics #where_tokens {
            fn walk<'__artifex>(&'__artifex self, _: &mut dyn #krate::walk::Visit<'__artifex>) {}
            fn walk_mut(&mut self, _: &mut dyn #krate::walk::VisitMut) {}
        }
    }
}

/// `where a, b` or nothing.
pub fn where_of(predicates: &[TokenStream]) -> TokenStream {
    if predicates.is_empty() {
        quote!()
    } else {
        quote!(where #(#predicates),*)
    }
}

fn module_only(attr: &syn::Attribute) -> syn::Error {
    syn::Error::new_spanned(
        attr,
        "this attribute describes how to build the field and needs #[module] on the struct \
         (instead of, or before, #[derive(Module)])",
    )
}

/// `#[derive(Module)]` + `#[artifex(transparent)]` on an enum: each variant holds one module
/// (`Dense(Linear)` or `Dense { linear: Linear }`), walked as if it stood in the enum's place,
/// with no path segment (an item of a `Vec<Enum>` keeps NNX's list paths, `layers.0.kernel`).
fn expand_enum(
    input: &DeriveInput,
    data: &syn::DataEnum,
    krate: &TokenStream,
    mut cx: Ctxt,
    opts: &options::Options,
) -> TokenStream {
    let type_params: Vec<_> = input
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    let mut arms = Vec::new();
    let mut arms_mut = Vec::new();
    let mut bounds = Vec::new();
    for variant in &data.variants {
        let [field] = variant.fields.iter().collect::<Vec<_>>()[..] else {
            cx.push(syn::Error::new_spanned(
                variant,
                "#[artifex(transparent)] needs exactly one field per variant: the module whose \
                 state the variant is",
            ));
            continue;
        };
        let ident = &variant.ident;
        let pattern = match &field.ident {
            Some(name) => quote!(Self::#ident { #name: __m }),
            None => quote!(Self::#ident(__m)),
        };
        let ty = &field.ty;
        let module = quote_spanned!(ty.span()=> <#ty as #krate::Module>);
        arms.push(quote!(#pattern => #module::walk(__m, __v),));
        arms_mut.push(quote!(#pattern => #module::walk_mut(__m, __v),));
        if mentions_any(ty, &type_params) {
            bounds.push(quote_spanned!(ty.span()=> #ty: #krate::Module));
        }
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let where_tokens = match impl_where(input, krate, cx, opts, bounds) {
        Ok(tokens) => tokens,
        Err(errors_and_stand_in) => return errors_and_stand_in,
    };
    let self_reg = regularizer_report(krate, input);
    // `match *self {}` for an enum without variants (a reference is never empty).
    let scrutinee = if data.variants.is_empty() {
        quote!(*self)
    } else {
        quote!(self)
    };
    quote! {
        impl #impl_generics #krate::Module for #name #ty_generics #where_tokens {
            fn walk<'__artifex>(&'__artifex self, __v: &mut dyn #krate::walk::Visit<'__artifex>) {
                let _ = &__v;
                #self_reg
                match #scrutinee {
                    #(#arms)*
                }
            }

            fn walk_mut(&mut self, __v: &mut dyn #krate::walk::VisitMut) {
                let _ = &__v;
                match #scrutinee {
                    #(#arms_mut)*
                }
            }
        }
    }
}
