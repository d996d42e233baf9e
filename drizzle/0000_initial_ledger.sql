CREATE TABLE `events` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`event_id` text NOT NULL,
	`source` text NOT NULL,
	`type` text,
	`payment_id` text,
	`refund_id` text,
	`status_code` integer,
	`change_time` text,
	`key_id` text,
	`signature` text,
	`raw_body` text,
	`raw_index` integer,
	`raw_bytes` integer,
	`outcome` text NOT NULL,
	`reason` text,
	`deliveries` integer DEFAULT 1 NOT NULL,
	`received_at` integer NOT NULL,
	`processed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `events_event_id_unique` ON `events` (`event_id`);--> statement-breakpoint
CREATE INDEX `events_payment_idx` ON `events` (`payment_id`,`seq`);--> statement-breakpoint
CREATE INDEX `events_outcome_idx` ON `events` (`outcome`,`seq`);--> statement-breakpoint
CREATE INDEX `events_received_idx` ON `events` (`received_at`);--> statement-breakpoint
CREATE TABLE `payments` (
	`id` text PRIMARY KEY NOT NULL,
	`base` text NOT NULL,
	`merchant_reference` text,
	`amount` integer,
	`currency` text,
	`status_code` integer,
	`status` text,
	`status_category` text,
	`stage` text NOT NULL,
	`rank` integer NOT NULL,
	`uncertain` integer DEFAULT false NOT NULL,
	`is_authorized` integer,
	`is_cancellable` integer,
	`is_refundable` integer,
	`captured_total` integer DEFAULT 0 NOT NULL,
	`refunded_total` integer DEFAULT 0 NOT NULL,
	`errors_json` text,
	`change_time` text,
	`last_source` text,
	`first_seen_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `payments_base_idx` ON `payments` (`base`);--> statement-breakpoint
CREATE INDEX `payments_merchant_reference_idx` ON `payments` (`merchant_reference`);--> statement-breakpoint
CREATE TABLE `refunds` (
	`id` text PRIMARY KEY NOT NULL,
	`payment_id` text,
	`payment_base` text NOT NULL,
	`merchant_reference` text,
	`amount` integer,
	`currency` text,
	`status_code` integer NOT NULL,
	`status` text,
	`stage` text NOT NULL,
	`rank` integer NOT NULL,
	`change_time` text,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`payment_id`) REFERENCES `payments`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `refunds_payment_idx` ON `refunds` (`payment_id`);--> statement-breakpoint
CREATE INDEX `refunds_base_idx` ON `refunds` (`payment_base`);--> statement-breakpoint
CREATE TABLE `state_changes` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`payment_id` text NOT NULL,
	`event_seq` integer,
	`from_stage` text,
	`to_stage` text NOT NULL,
	`from_status_code` integer,
	`to_status_code` integer,
	`cause` text NOT NULL,
	`at` integer NOT NULL,
	FOREIGN KEY (`payment_id`) REFERENCES `payments`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`event_seq`) REFERENCES `events`(`seq`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `state_changes_payment_idx` ON `state_changes` (`payment_id`,`seq`);