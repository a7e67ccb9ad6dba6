#pragma once
// Logging goes through spdlog's default logger. Never log request bodies, passwords or tokens.
#include <spdlog/spdlog.h>

#include <string_view>

namespace chat {

/// Sets the default logger's level ("trace".."off") and pattern. Call once at start-up.
void init_logging(std::string_view level);

}  // namespace chat
