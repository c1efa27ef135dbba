//! Parsing of the field attributes shared by `#[derive(Module)]` and `#[module]`.

use darling::FromMeta;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprArray, LitStr, Meta, Token};

/// Arguments of `#[param(...)]` and `#[batch_stat(...)]`.
#[derive(Debug, FromMeta)]
pub struct VariableArgs {
    /// The initializer expression.
    pub init: Option<Expr>,
    /// `[dim, dim, ...]` in terms of config fields.
    pub shape: Option<ExprArray>,
    /// Optional dtype expression (default f32).
    pub dtype: Option<Expr>,
    /// Optional condition: the field is an `Option<_>`, `Some` when this is true.
    pub when: Option<Expr>,
}

/// Arguments of `#[rng(...)]`.
#[derive(Debug, FromMeta)]
pub struct RngArgs {
    /// The stream to fork from (falls back to `default`).
    pub stream: LitStr,
}

/// Arguments of `#[config]` / `#[config(default = ..)]` / `#[config(computed = ..)]`.
#[derive(Debug, Default, FromMeta)]
pub struct ConfigArgs {
    /// Builder default; the config becomes an optional setter.
    pub default: Option<Expr>,
    /// Computed from other configs; not a builder argument.
    pub computed: Option<Expr>,
}

/// Arguments of `#[new(args.., when = cond)]`.
pub struct NewArgs {
    /// The arguments of `new` before `rngs`.
    pub args: Vec<Expr>,
    /// `when = cond`: the field is an `Option<_>`, built when `cond` holds.
    pub when: Option<Expr>,
}

impl NewArgs {
    fn from_exprs(exprs: Punctuated<Expr, Token![,]>) -> Self {
        let mut args: Vec<Expr> = exprs.into_iter().collect();
        let when = match args.pop() {
            Some(Expr::Assign(a)) if matches!(&*a.left, Expr::Path(p) if p.path.is_ident("when")) => {
                Some(*a.right)
            }
            last => {
                args.extend(last);
                None
            }
        };
        Self { args, when }
    }
}

/// What one field is, by its attribute.
pub enum FieldRole {
    /// `#[param(..)]`.
    Param(VariableArgs, Attribute),
    /// `#[batch_stat(..)]`.
    BatchStat(VariableArgs, Attribute),
    /// `#[rng(stream = "..")]`.
    Rng(RngArgs),
    /// `#[init(expr)]`.
    Init(Expr),
    /// `#[new(args..)]`: `<FieldType>::new(args.., rngs)?`; with a last argument
    /// `when = cond`, an `Option<T>` field that is `Some(T::new(args.., rngs)?)` when `cond`.
    New(NewArgs),
    /// `#[config]`.
    Config(ConfigArgs),
    /// `#[from_config]`: a submodule built by `Configurable::from_config` from a constructor
    /// argument of the same name (its config).
    FromConfig,
    /// No attribute: `Mode`, `ModulePath`.
    Auto,
}

const ROLE_NAMES: [&str; 7] = [
    "param",
    "batch_stat",
    "rng",
    "init",
    "new",
    "config",
    "from_config",
];

/// True for attributes this crate owns.
pub fn is_role_attr(attr: &Attribute) -> bool {
    ROLE_NAMES.iter().any(|n| attr.path().is_ident(n))
}

/// Reads the role of a field from its attributes; at most one role attribute is allowed.
pub fn field_role(attrs: &[Attribute]) -> syn::Result<FieldRole> {
    let mut found: Option<(FieldRole, &Attribute)> = None;
    for attr in attrs.iter().filter(|a| is_role_attr(a)) {
        if let Some((_, first)) = &found {
            let mut err = syn::Error::new_spanned(
                attr,
                "a field takes one of #[param], #[batch_stat], #[rng], #[init], #[new], #[from_config] or #[config]",
            );
            err.combine(syn::Error::new_spanned(first, "first role given here"));
            return Err(err);
        }
        found = Some((parse_role(attr)?, attr));
    }
    Ok(found.map(|(r, _)| r).unwrap_or(FieldRole::Auto))
}

fn parse_role(attr: &Attribute) -> syn::Result<FieldRole> {
    let path = attr.path();
    if path.is_ident("config") {
        return match &attr.meta {
            Meta::Path(_) => Ok(FieldRole::Config(ConfigArgs::default())),
            meta => {
                let args = ConfigArgs::from_meta(meta)?;
                if let (Some(_), Some(computed)) = (&args.default, &args.computed) {
                    return Err(syn::Error::new_spanned(
                        computed,
                        "a config is either `default = ..` (a builder setter) or `computed = ..`, not both",
                    ));
                }
                Ok(FieldRole::Config(args))
            }
        };
    }
    if path.is_ident("init") {
        let expr: Expr = attr.parse_args().map_err(|e| {
            syn::Error::new(
                e.span(),
                "#[init(expr)] takes the expression that builds this field, e.g. #[init(Linear::new(din, dout, rngs)?)]",
            )
        })?;
        return Ok(FieldRole::Init(expr));
    }
    if path.is_ident("new") {
        return match &attr.meta {
            Meta::List(list) => list
                .parse_args_with(Punctuated::parse_terminated)
                .map(|exprs| FieldRole::New(NewArgs::from_exprs(exprs)))
                .map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "#[new(args..)] takes the arguments of the field type's `new` before `rngs`, e.g. #[new(din, dout)] for `Linear::new(din, dout, rngs)?`",
                    )
                }),
            _ => Err(syn::Error::new_spanned(
                attr,
                "#[new] needs the arguments of the field type's `new` before `rngs`, e.g. #[new(din, dout)]",
            )),
        };
    }
    if path.is_ident("from_config") {
        return match &attr.meta {
            Meta::Path(_) => Ok(FieldRole::FromConfig),
            _ => Err(syn::Error::new_spanned(
                attr,
                "#[from_config] takes no arguments: the constructor argument of the same name is the field's config",
            )),
        };
    }
    if path.is_ident("rng") {
        return match &attr.meta {
            Meta::List(_) => Ok(FieldRole::Rng(RngArgs::from_meta(&attr.meta)?)),
            _ => Err(syn::Error::new_spanned(
                attr,
                "#[rng] needs the stream to fork, e.g. #[rng(stream = \"dropout\")]",
            )),
        };
    }
    let args = match &attr.meta {
        Meta::List(_) => VariableArgs::from_meta(&attr.meta)?,
        _ => {
            return Err(syn::Error::new_spanned(
                attr,
                "expected arguments, e.g. #[param(init = lecun_normal, shape = [din, dout])]",
            ))
        }
    };
    if path.is_ident("param") {
        Ok(FieldRole::Param(args, attr.clone()))
    } else {
        Ok(FieldRole::BatchStat(args, attr.clone()))
    }
}
