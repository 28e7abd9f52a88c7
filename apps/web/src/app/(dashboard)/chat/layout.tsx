import type { ReactNode } from "react";
import { ChatLayout } from "@/components/chat/chat-layout";

/** /chat, /chat/new and /chat/[id] share the conversation list (it stays put while a new chat becomes a stored one). */
export default function ChatSectionLayout({ children }: { children: ReactNode }) {
  return <ChatLayout>{children}</ChatLayout>;
}
