//! `#[layer]` on an inherent impl: the forward method marked `#[forward]` (or named
//! `forward_t`, else `forward`) also implements `Layer` and candle's `Module` / `ModuleT`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ImplItem, ImplItemFn, ItemImpl, Meta, Pat, Token, Type};

use crate::ctxt::Ctxt;
use crate::options;

/// The generated code; never fails (errors are part of the output, beside the impl).
pub fn expand(args: TokenStream, mut item: ItemImpl) -> TokenStream {
    let mut cx = Ctxt::default();
    let opts = options::layer_args(args, &mut cx);
    let krate = opts.krate();
    if let Some((_, path, _)) = &item.trait_ {
        cx.push(syn::Error::new_spanned(
            path,
            "#[layer] goes on an inherent impl (`impl MyLayer { .. }`) that holds the forward method",
        ));
        return errors_and(cx, quote!(#item));
    }

    // Take the `#[forward(..)]` markers off the methods, remembering the marked one.
    let mut marked: Vec<(ImplItemFn, Vec<(syn::Ident, Expr)>)> = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let Some(pos) = f.attrs.iter().position(|a| a.path().is_ident("forward")) else {
            continue;
        };
        let attr = f.attrs.remove(pos);
        let given = match &attr.meta {
            Meta::Path(_) => Vec::new(),
            _ => cx
                .ok(attr
                    .parse_args_with(Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated))
                .map(|list| {
                    list.into_iter()
                        .filter_map(|nv| match nv.path.get_ident() {
                            Some(i) => Some((i.clone(), nv.value)),
                            None => {
                                cx.push(syn::Error::new_spanned(
                                    &nv.path,
                                    "expected an argument name",
                                ));
                                None
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        marked.push((f.clone(), given));
    }
    if marked.len() > 1 {
        cx.push(syn::Error::new_spanned(
            &marked[1].0.sig,
            "only one method of a #[layer] impl can be #[forward]",
        ));
    }
    let by_name = |name: &str| {
        item.items.iter().find_map(|i| match i {
            ImplItem::Fn(f) if f.sig.ident == name => Some((f.clone(), Vec::new())),
            _ => None,
        })
    };
    let chosen = marked
        .into_iter()
        .next()
        .or_else(|| by_name("forward_t"))
        .or_else(|| by_name("forward"));
    let Some((method, given)) = chosen else {
        cx.push(syn::Error::new(
            item.self_ty.span(),
            "#[layer] needs a forward method: mark one `#[forward]` or name it `forward_t` / `forward` \
             (`fn forward(&self, x: &Tensor) -> Result<Tensor>`, or with `train: Option<bool>`)",
        ));
        return errors_and(cx, quote!(#item));
    };

    let mut call_args = Vec::new();
    let mut has_train = false;
    let mut inputs = method.sig.inputs.iter();
    if !matches!(inputs.next(), Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none())
    {
        cx.push(syn::Error::new_spanned(
            &method.sig,
            "the forward method takes `&self`",
        ));
    }
    match inputs.next() {
        Some(FnArg::Typed(_)) => call_args.push(quote!(x)),
        _ => cx.push(syn::Error::new_spanned(
            &method.sig,
            "the forward method takes the input tensor after `&self`: `fn forward(&self, x: &Tensor) -> Result<Tensor>`",
        )),
    }
    for arg in inputs {
        let FnArg::Typed(pt) = arg else { continue };
        let name = match &*pt.pat {
            Pat::Ident(p) => Some(&p.ident),
            _ => None,
        };
        if let Some(value) = name
            .and_then(|n| given.iter().find(|(g, _)| g == n))
            .map(|(_, v)| v)
        {
            call_args.push(quote!(#value));
        } else if is_option_bool(&pt.ty) && !has_train {
            has_train = true;
            call_args.push(quote!(train));
        } else {
            cx.push(syn::Error::new_spanned(
                pt,
                "give this argument's value for the Layer impl, e.g. #[forward(mask = None)]; \
                 only the input and a `train: Option<bool>` are passed through",
            ));
        }
    }
    if cx.failed() {
        return errors_and(cx, quote!(#item));
    }

    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let ident = &method.sig.ident;
    let span = method.sig.ident.span();
    let call = quote_spanned!(span=> <#self_ty>::#ident(self, #(#call_args),*));
    let candle = if has_train {
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::candle_nn::ModuleT for #self_ty #where_clause {
                fn forward_t(
                    &self,
                    x: &#krate::candle_core::Tensor,
                    train: bool,
                ) -> #krate::candle_core::Result<#krate::candle_core::Tensor> {
                    let train = ::core::option::Option::Some(train);
                    #call.map_err(#krate::into_candle_error)
                }
            }
        }
    } else {
        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::candle_nn::Module for #self_ty #where_clause {
                fn forward(
                    &self,
                    x: &#krate::candle_core::Tensor,
                ) -> #krate::candle_core::Result<#krate::candle_core::Tensor> {
                    #call.map_err(#krate::into_candle_error)
                }
            }
        }
    };
    let unused = if has_train {
        quote!()
    } else {
        quote!(let _ = train;)
    };
    // An inherent `forward_activated(&self, x, activation)` (a fused layer + activation)
    // overrides the trait's.
    let activated = by_name("forward_activated").map(|_| {
        quote! {
            fn forward_activated(
                &self,
                x: &#krate::candle_core::Tensor,
                activation: &#krate::activation::Activation,
            ) -> #krate::Result<#krate::candle_core::Tensor> {
                <#self_ty>::forward_activated(self, x, activation)
            }
        }
    });
    quote! {
        #item

        #[automatically_derived]
        impl #impl_generics #krate::Layer for #self_ty #where_clause {
            fn forward_t(
                &self,
                x: &#krate::candle_core::Tensor,
                train: ::core::option::Option<bool>,
            ) -> #krate::Result<#krate::candle_core::Tensor> {
                #unused
                #call
            }

            #activated
        }

        #candle
    }
}

fn errors_and(cx: Ctxt, item: TokenStream) -> TokenStream {
    let errors = cx.into_compile_errors();
    quote!(#errors #item)
}

/// `Option<bool>`, written any way that ends in `Option<bool>`.
fn is_option_bool(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    if last.ident != "Option" {
        return false;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => {
            matches!(a.args.first(), Some(syn::GenericArgument::Type(Type::Path(t))) if t.path.is_ident("bool"))
        }
        _ => false,
    }
}
