/** Many machines: extraction spread over `headstart worker` processes through BullMQ on Redis. */
export * from './connection';
export * from './jobs';
export * from './roots';
export * from './coordinator';
export * from './worker';
