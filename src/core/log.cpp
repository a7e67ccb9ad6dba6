#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace chat {

void init_logging(std::string_view level) {
  auto logger = spdlog::stdout_color_mt("chatd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace chat
