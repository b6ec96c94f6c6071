//! The model catalog: every name a request may carry — `<provider>/<model>`,
//! a bare model name offered by exactly one provider, a virtual model — and
//! what it stands for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::VirtualModel;
use crate::config::diag::Diags;
use crate::config::file::ConfigFile;
use crate::pricing::Price;
use crate::providers::Provider;
use crate::providers::http::Upstreams;

/// Every model name a request may carry, resolved to the provider that serves it.
#[derive(Debug, Default)]
pub struct ModelCatalog {
    pub providers: Vec<Arc<Provider>>,
    /// `<provider>/<model>` → target.
    pub by_name: HashMap<String, Target>,
    /// Bare `<model>` → target, only when exactly one provider lists it.
    pub by_bare_name: HashMap<String, Target>,
    pub virtual_models: HashMap<String, Arc<VirtualModel>>,
    /// Canonical and virtual names in listing order, for `/v1/models`.
    pub listed: Vec<String>,
}

/// What a requested model name stands for.
#[derive(Debug, Clone)]
pub enum ModelRef {
    Physical(Target),
    Virtual(Arc<VirtualModel>),
}

impl ModelRef {
    /// The name access rules are checked against.
    pub fn name(&self) -> &str {
        match self {
            ModelRef::Physical(t) => &t.canonical,
            ModelRef::Virtual(v) => &v.name,
        }
    }
}

/// One physical model on one provider.
#[derive(Debug, Clone)]
pub struct Target {
    /// `<provider>/<model>`, as shown in `x-tollgate-resolved-model`.
    pub canonical: Arc<str>,
    /// The model name sent to the provider.
    pub upstream_model: Arc<str>,
    pub provider: Arc<Provider>,
    /// From the config, else the built-in catalog; `None` when neither knows it.
    pub price: Option<Price>,
}

impl ModelCatalog {
    /// A virtual model by name, else a physical model.
    pub fn resolve_ref(&self, requested: &str) -> Option<ModelRef> {
        if let Some(v) = self.virtual_models.get(requested) {
            return Some(ModelRef::Virtual(v.clone()));
        }
        self.resolve(requested).map(ModelRef::Physical)
    }

    /// Resolves a requested physical model name; `None` means no provider serves it.
    pub fn resolve(&self, requested: &str) -> Option<Target> {
        if let Some(t) = self.by_name.get(requested) {
            return Some(t.clone());
        }
        if let Some(t) = self.by_bare_name.get(requested) {
            return Some(t.clone());
        }
        // Providers that list no models pass any model name through.
        let (prefix, model) = requested.split_once('/')?;
        let provider = self.providers.iter().find(|p| p.name == prefix && p.any_model)?;
        if model.is_empty() {
            return None;
        }
        Some(Target {
            canonical: requested.into(),
            upstream_model: model.into(),
            provider: provider.clone(),
            price: crate::pricing::builtin(model),
        })
    }
}

/// Every provider of the file and the models it lists (virtual models are
/// added by `build::build`).
pub fn build(file: &ConfigFile, upstreams: &Upstreams, d: &mut Diags) -> ModelCatalog {
    let mut cat = ModelCatalog::default();
    let mut bare: HashMap<String, Option<Target>> = HashMap::new();
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for sec in &file.providers {
        let name = &sec.name.value;
        if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
            d.at(
                &sec.name,
                format!("provider name `{name}` must be non-empty, without `/` or spaces"),
                "e.g. openai-main",
            );
            continue;
        }
        if seen.insert(name, ()).is_some() {
            d.at(&sec.name, format!("duplicate provider name `{name}`"), "give every provider its own name");
            continue;
        }
        let Some(provider) = Provider::build(sec, upstreams, d) else { continue };
        let provider = Arc::new(provider);
        let mut model_names = HashSet::new();
        for m in &sec.models {
            if m.name.value.is_empty() || !model_names.insert(m.name.value.as_str()) {
                d.at(&m.name, format!("model `{}` is empty or listed twice in provider `{name}`", m.name.value), "");
                continue;
            }
            for (field, v) in
                [("input_cost_per_mtok", m.input_cost_per_mtok), ("output_cost_per_mtok", m.output_cost_per_mtok)]
            {
                if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    d.at(&m.name, format!("{field} of `{}` must be a non-negative number", m.name.value), "");
                }
            }
            let canonical = format!("{name}/{}", m.name.value);
            let target = Target {
                canonical: canonical.as_str().into(),
                upstream_model: m.name.value.as_str().into(),
                provider: provider.clone(),
                price: price(m.input_cost_per_mtok, m.output_cost_per_mtok, &m.name.value),
            };
            bare.entry(m.name.value.clone()).and_modify(|t| *t = None).or_insert_with(|| Some(target.clone()));
            cat.listed.push(canonical.clone());
            cat.by_name.insert(canonical, target);
        }
        cat.providers.push(provider);
    }
    // A bare name resolves only when one provider offers it and it does not
    // collide with a provider-qualified name.
    cat.by_bare_name =
        bare.into_iter().filter_map(|(k, t)| Some((k, t?))).filter(|(k, _)| !cat.by_name.contains_key(k)).collect();
    cat
}

/// A model's price: the config's numbers where given, the built-in
/// catalog's for the rest.
fn price(input: Option<f64>, output: Option<f64>, model: &str) -> Option<crate::pricing::Price> {
    let builtin = crate::pricing::builtin(model);
    if input.is_none() && output.is_none() {
        return builtin;
    }
    let configured = crate::pricing::Price::from_usd_per_mtok(input.unwrap_or(0.0), output.unwrap_or(0.0));
    let b = builtin.unwrap_or_default();
    Some(crate::pricing::Price {
        input: if input.is_some() { configured.input } else { b.input },
        output: if output.is_some() { configured.output } else { b.output },
        cached_read: if input.is_some() { configured.input } else { b.cached_read },
        cached_write: if input.is_some() { configured.input } else { b.cached_write },
    })
}
