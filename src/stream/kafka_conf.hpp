#pragma once
// librdkafka configuration shared by the producer (kafka_log) and chat-worker's consumer: only
// code that links librdkafka includes this header.
#include <librdkafka/rdkafka.h>

#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace chat::stream {

/// A new rd_kafka_conf_t with `props` set, librdkafka's log routed to spdlog (errors and warnings
/// as warnings, the rest at debug) and a default error callback that logs (fatal errors as
/// critical). The caller owns the result (rd_kafka_new takes it). invalid_argument names a bad
/// property.
result<rd_kafka_conf_t*> make_conf(const std::vector<std::pair<std::string, std::string>>& props);

}  // namespace chat::stream
