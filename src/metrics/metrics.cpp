#include "metrics/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>

namespace chat::metrics {

void Counter::inc(double v) const { c_->Increment(v); }
double Counter::value() const { return c_->Value(); }
void Gauge::set(double v) const { g_->Set(v); }
void Gauge::inc(double v) const { g_->Increment(v); }
void Gauge::dec(double v) const { g_->Decrement(v); }
double Gauge::value() const { return g_->Value(); }
void Histogram::observe(double v) const { h_->Observe(v); }

struct Registry::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::mutex mu;  // guards the family maps and hooks (prometheus::Registry is itself thread-safe)
  std::map<std::string, prometheus::Family<prometheus::Counter>*, std::less<>> counters;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*, std::less<>> gauges;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*, std::less<>> histograms;
  std::vector<std::function<void()>> hooks;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Counter Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->counters.find(name);
  if (it == impl_->counters.end())
    it = impl_->counters
             .emplace(std::string(name), &prometheus::BuildCounter()
                                               .Name(std::string(name))
                                               .Help(std::string(help))
                                               .Register(*impl_->registry))
             .first;
  return Counter(&it->second->Add(labels));
}

Gauge Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->gauges.find(name);
  if (it == impl_->gauges.end())
    it = impl_->gauges
             .emplace(std::string(name), &prometheus::BuildGauge()
                                               .Name(std::string(name))
                                               .Help(std::string(help))
                                               .Register(*impl_->registry))
             .first;
  return Gauge(&it->second->Add(labels));
}

Histogram Registry::histogram(std::string_view name, std::string_view help,
                              const std::vector<double>& buckets, const Labels& labels) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->histograms.find(name);
  if (it == impl_->histograms.end())
    it = impl_->histograms
             .emplace(std::string(name), &prometheus::BuildHistogram()
                                               .Name(std::string(name))
                                               .Help(std::string(help))
                                               .Register(*impl_->registry))
             .first;
  return Histogram(&it->second->Add(labels, prometheus::Histogram::BucketBoundaries(buckets)));
}

void Registry::on_collect(std::function<void()> hook) {
  std::lock_guard lock(impl_->mu);
  impl_->hooks.push_back(std::move(hook));
}

std::string Registry::serialize() {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(impl_->mu);
    hooks = impl_->hooks;
  }
  for (auto& h : hooks) h();
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

}  // namespace chat::metrics
