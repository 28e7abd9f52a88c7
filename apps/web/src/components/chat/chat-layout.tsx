"use client";
/**
 * The chat section: the conversation list beside the open conversation on a wide
 * screen; on a phone one or the other (the list at /chat, the conversation at
 * /chat/[id] and /chat/new).
 */
import { usePathname } from "next/navigation";
import type { ReactNode } from "react";
import { cn } from "@/lib/cn";
import { ConversationList } from "./conversation-list";

export function ChatLayout({ children }: { children: ReactNode }) {
  const pathname = usePathname();
  const inConversation = pathname !== "/chat";
  return (
    <div className="flex min-h-0 flex-1 gap-4">
      <ConversationList className={cn("w-full lg:w-80 lg:shrink-0", inConversation && "max-lg:hidden")} />
      <section className={cn("flex min-h-0 min-w-0 flex-1 flex-col", !inConversation && "max-lg:hidden")}>{children}</section>
    </div>
  );
}
