#include "stream/kafka_conf.hpp"

#include "core/log.hpp"

namespace chat::stream {
namespace {

void log_cb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  // syslog levels: 0..3 are errors, 4 warnings; the rest is librdkafka's chatter.
  if (level <= 4)
    spdlog::warn("kafka: {} {}", fac, buf);
  else
    spdlog::debug("kafka: {} {}", fac, buf);
}

void error_cb(rd_kafka_t* rk, int err, const char* reason, void*) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    spdlog::critical("kafka: fatal error: {}", buf);
    return;
  }
  // Broker-down errors repeat while the broker is away; librdkafka already coalesces them.
  spdlog::warn("kafka: {} ({})", reason, rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)));
}

}  // namespace

result<rd_kafka_conf_t*> make_conf(const std::vector<std::pair<std::string, std::string>>& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return error{errc::invalid_argument, "kafka setting " + k + ": " + errstr};
    }
  }
  rd_kafka_conf_set_log_cb(conf, log_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  return conf;
}

}  // namespace chat::stream
