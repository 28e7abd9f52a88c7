// orchard-tokenize: encodes NDJSON strings with a Hugging Face tokenizer.json,
// for comparing our ids with the `tokenizers` library's.
//
//   orchard-tokenize TOKENIZER_JSON_OR_DIR < lines.ndjson
//     each stdin line is a JSON string; each output line is
//     {"ids":[...],"text":"<concatenated token_bytes>"}
//   orchard-tokenize TOKENIZER_JSON_OR_DIR --token-id CONTENT
//     prints the id of a token, or exits 1.
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "orchard/hf_tokenizer.h"

int main(int argc, char** argv) {
  std::string path, token_content;
  bool want_id = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--token-id" && i + 1 < argc) {
      want_id = true;
      token_content = argv[++i];
    } else if (path.empty()) {
      path = arg;
    } else {
      std::cerr << "usage: orchard-tokenize TOKENIZER_JSON_OR_DIR [--token-id CONTENT]\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "usage: orchard-tokenize TOKENIZER_JSON_OR_DIR [--token-id CONTENT]\n";
    return 2;
  }
  std::string error;
  const auto tok = orchard::HfTokenizer::load(path, &error);
  if (!tok) {
    std::cerr << "orchard-tokenize: " << error << "\n";
    return 1;
  }
  if (want_id) {
    const auto id = tok->token_id(token_content);
    if (!id) {
      std::cerr << "orchard-tokenize: no token " << token_content << "\n";
      return 1;
    }
    std::cout << *id << "\n";
    return 0;
  }
  std::string line;
  int status = 0;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      std::cerr << "orchard-tokenize: bad input line: " << e.what() << "\n";
      status = 1;
      std::cout << "{\"error\":\"bad input\"}\n";
      continue;
    }
    if (!in.is_string()) {
      std::cerr << "orchard-tokenize: input line is not a JSON string\n";
      status = 1;
      std::cout << "{\"error\":\"not a string\"}\n";
      continue;
    }
    const auto ids = tok->encode(in.get<std::string>());
    std::string text;
    // HF drops special tokens before decoding, so the decoder's "first token"
    // is the first non-special one.
    bool first = true;
    for (const std::int32_t id : ids) {
      if (tok->is_special(id)) continue;
      text += tok->token_bytes(id, first);
      first = false;
    }
    nlohmann::json out = {{"ids", ids}, {"text", text}};
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return status;
}
