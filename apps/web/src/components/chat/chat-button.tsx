"use client";
/** "Chat" on a device (fleet row, device page): opens a new conversation, or says why the device cannot chat now. */
import { MessageSquare } from "lucide-react";
import Link from "next/link";
import type { DeviceSummary } from "@orchard/contracts";
import { Button, buttonClass } from "@/components/ui/button";
import { chatAvailability, newChatHref, type ChatAvailability } from "@/lib/chat-device";
import { cn } from "@/lib/cn";
import { useCan } from "@/lib/use-role";

export function ChatButton({ device, testId, className }: { device: DeviceSummary; testId?: string; className?: string }) {
  // A viewer may read conversations but not start one (the server refuses it anyway).
  const canChat = useCan("operator");
  const availability: ChatAvailability = canChat
    ? chatAvailability(device)
    : { ok: false, label: "read only", reason: "Chatting needs the operator role." };
  if (availability.ok) {
    return (
      <Link
        href={newChatHref(device.id)}
        className={buttonClass("outline", "sm", className)}
        title={`Chat with the model on ${device.name}`}
        data-testid={testId}
        data-can-chat="true"
      >
        <MessageSquare aria-hidden />
        Chat
      </Link>
    );
  }
  // A disabled button gets no pointer events, so the tooltip sits on a wrapper.
  return (
    <span title={`Cannot chat: ${availability.reason}`} className={cn("inline-flex cursor-not-allowed", className)}>
      <Button
        variant="outline"
        size="sm"
        disabled
        className={className}
        aria-label={`Chat (unavailable: ${availability.reason})`}
        data-testid={testId}
        data-can-chat="false"
      >
        <MessageSquare aria-hidden />
        Chat
      </Button>
    </span>
  );
}
