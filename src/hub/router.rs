//! Routing: ordered rules from `[[routes]]` matching destination prefix, sender, channel and
//! tags; each names connectors and a strategy for choosing among those that are up. (Inbound
//! routes, which forward what is received, are [`super::forward`]'s.)

use crate::config::{RouteConfig, Strategy};
use crate::model::Channel;
use crate::connector::Link;
use crate::model::Message;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One compiled route.
pub struct Route {
    pub index: usize,
    prefixes: Vec<String>,
    /// The route's own channel, or else those its connectors carry.
    channels: Vec<Channel>,
    senders: Vec<String>,
    tags: Vec<String>,
    /// Indices into the hub's link table.
    pub links: Vec<usize>,
    strategy: Strategy,
    weights: Vec<u32>,
    next: AtomicUsize,
}

/// The result of choosing a link.
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    Link(usize),
    /// The route exists but none of its connectors is up.
    NoneUp,
}

/// Ordered routes.
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Compile routes; `link_index` maps a connector name to its index (validated config
    /// guarantees every name exists; unknown names are skipped), `carries` a link to the
    /// channels it carries.
    pub fn new(
        cfg: &[RouteConfig],
        link_index: &dyn Fn(&str) -> Option<usize>,
        carries: &dyn Fn(usize) -> Vec<Channel>,
    ) -> Router {
        let routes = cfg
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_inbound())
            .map(|(index, r)| {
                let m = r.matches.clone().unwrap_or_default();
                let links: Vec<usize> = r.to.iter().filter_map(|n| link_index(n)).collect();
                let channels = match m.channel {
                    Some(c) => vec![c],
                    None => {
                        let mut c: Vec<Channel> = links.iter().flat_map(|&i| carries(i)).collect();
                        c.dedup();
                        c
                    }
                };
                Route {
                    index,
                    prefixes: m.prefix.map(|p| p.to_vec()).unwrap_or_default(),
                    channels,
                    senders: m.sender.map(|s| s.to_vec()).unwrap_or_default(),
                    tags: m.tags,
                    links,
                    strategy: r.strategy,
                    weights: r.weights.clone(),
                    next: AtomicUsize::new(0),
                }
            })
            .collect();
        Router { routes }
    }

    /// The first route whose conditions all hold.
    pub fn find(
        &self,
        to: &str,
        from: Option<&str>,
        channel: Channel,
        tags: &[String],
    ) -> Option<&Route> {
        self.routes.iter().find(|r| {
            (r.prefixes.is_empty() || r.prefixes.iter().any(|p| to.starts_with(p.as_str())))
                && r.channels.contains(&channel)
                && (r.senders.is_empty() || from.is_some_and(|f| r.senders.iter().any(|s| s == f)))
                && r.tags.iter().all(|t| tags.contains(t))
        })
    }

    pub fn find_for(&self, m: &Message) -> Option<&Route> {
        self.find(&m.envelope.to, m.envelope.from.as_deref(), m.envelope.channel, &m.envelope.tags)
    }
}

impl Route {
    /// Choose a link by the route's strategy among those that are up.
    pub fn pick(&self, links: &[Arc<Link>]) -> Pick {
        let up: Vec<usize> = self
            .links
            .iter()
            .copied()
            .filter(|&i| links[i].is_up())
            .collect();
        if up.is_empty() {
            return Pick::NoneUp;
        }
        let chosen = match self.strategy {
            Strategy::Failover => up[0],
            Strategy::RoundRobin => up[self.next.fetch_add(1, Ordering::Relaxed) % up.len()],
            Strategy::LeastLoaded => *up
                .iter()
                .min_by_key(|&&i| links[i].inflight())
                .unwrap_or(&up[0]),
            Strategy::Weighted => {
                let weight = |i: usize| {
                    self.links
                        .iter()
                        .position(|&l| l == i)
                        .and_then(|p| self.weights.get(p))
                        .copied()
                        .unwrap_or(0)
                };
                let total: u64 = up.iter().map(|&i| weight(i) as u64).sum();
                if total == 0 {
                    up[0]
                } else {
                    // Smooth deterministic spread: walk the counter through the weight line.
                    let mut x = (self.next.fetch_add(1, Ordering::Relaxed) as u64)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        % total;
                    let mut pick = up[0];
                    for &i in &up {
                        let w = weight(i) as u64;
                        if x < w {
                            pick = i;
                            break;
                        }
                        x -= w;
                    }
                    pick
                }
            }
        };
        Pick::Link(chosen)
    }
}
