import { Field, ID, ObjectType } from 'type-graphql';

@ObjectType({ description: 'The caller, as their token describes them' })
export class Me {
  @Field(() => ID) id!: string;
  @Field(() => [String]) roles!: string[];
  @Field({ description: 'roles has admin or super_admin, or the token says isSuperAdmin' }) isAdmin!: boolean;
  @Field(() => ID, { nullable: true }) tenantId!: string | null;
  @Field(() => String, { nullable: true }) username!: string | null;
}
