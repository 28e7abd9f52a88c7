export * from "./topics.ts";
export * from "./device.ts";
export * from "./runner.ts";
export * from "./socket.ts";
export * from "./api.ts";
export * from "./chat.ts";
